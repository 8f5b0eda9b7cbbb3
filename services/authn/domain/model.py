"""Entities of the authn domain."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    """What a user may do; the edge policy maps roles to RPCs."""

    VIEWER = "viewer"
    TRADER = "trader"
    RISK_MANAGER = "risk_manager"
    ADMIN = "admin"


USERNAME_RE = re.compile(r"^[a-z0-9_.-]{3,64}$")
ACCOUNT_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MIN_PASSWORD_LEN = 12


@dataclass
class User:
    user_id: str
    username: str
    password_hash: str
    roles: tuple[Role, ...]
    accounts: tuple[str, ...]
    disabled: bool = False
    create_time_ns: int = 0


@dataclass
class ApiKey:
    key_id: str
    user_id: str
    secret_hash: str
    label: str
    create_time_ns: int
    revoked: bool = False


@dataclass
class RefreshSession:
    """A refresh token (stored as its hash). Refresh is single use: a reused token revokes the session family."""

    token_hash: str
    user_id: str
    family_id: str
    expires_at: int
    used: bool = False
    revoked: bool = False


@dataclass(frozen=True)
class SigningKey:
    """An asymmetric signing key. status: next (published, not signing), current (signing), retired (published)."""

    kid: str
    private_pem: bytes
    status: str
    created_at: int
    retired_at: int = 0


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    access_jti: str
    access_expires_at: int
    refresh_token: str
    refresh_expires_at: int


@dataclass
class Revocations:
    """Revoked access tokens (jti -> exp) and per-user not-before times (tokens issued earlier are revoked)."""

    jtis: dict[str, int] = field(default_factory=dict)
    subjects: dict[str, int] = field(default_factory=dict)

    def prune(self, now: int) -> None:
        self.jtis = {jti: exp for jti, exp in self.jtis.items() if exp > now}
