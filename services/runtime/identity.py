"""The caller's identity as verified by the edge (Envoy jwt_authn forwards the JWT payload)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass

# Envoy's jwt_authn writes the verified payload into this header; the edge strips any client-sent copy first.
JWT_PAYLOAD_HEADER = "x-jwt-payload"


@dataclass(frozen=True)
class Principal:
    """Who is calling: user id, roles and the accounts the user may act on."""

    user_id: str
    username: str
    roles: frozenset[str]
    accounts: frozenset[str]
    token_id: str
    expires_at: int

    def has_role(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))

    def may_act_on(self, account_id: str) -> bool:
        return self.has_role("admin", "risk_manager") or account_id in self.accounts


def principal_from_metadata(metadata: Iterable[tuple[str, str | bytes]] | None) -> Principal | None:
    for key, value in metadata or ():
        if key == JWT_PAYLOAD_HEADER:
            raw = value if isinstance(value, str) else value.decode()
            return principal_from_payload(json.loads(_b64url_decode(raw)))
    return None


def principal_from_payload(claims: dict[str, object]) -> Principal:
    roles = claims.get("roles") or []
    accounts = claims.get("accounts") or []
    return Principal(
        user_id=str(claims.get("sub", "")),
        username=str(claims.get("name", "")),
        roles=frozenset(str(r) for r in roles) if isinstance(roles, list) else frozenset(),
        accounts=frozenset(str(a) for a in accounts) if isinstance(accounts, list) else frozenset(),
        token_id=str(claims.get("jti", "")),
        expires_at=int(claims.get("exp", 0)),  # type: ignore[call-overload]
    )


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
