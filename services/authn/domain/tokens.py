"""Signing keys (ES256) with pre-published rotation, JWT issuing, and the JWKS document."""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass, replace

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from services.authn.domain.model import SigningKey, User

ALGORITHM = "ES256"


@dataclass(frozen=True)
class TokenPolicy:
    issuer: str
    audience: str
    access_ttl_s: int
    refresh_ttl_s: int
    # How long a retired key stays in the JWKS: at least the access TTL, so its tokens verify until they expire.
    retired_key_keep_s: int
    # How long the next key must have been in the JWKS before it may sign: verifiers (Envoy) cache the JWKS
    # this long, so a key promoted sooner could sign tokens nobody can verify yet.
    key_propagation_s: int = 0


def new_signing_key(status: str, now: int) -> SigningKey:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return SigningKey(kid=uuid.uuid4().hex[:16], private_pem=pem, status=status, created_at=now)


class KeyRing:
    """current signs; next is already in the JWKS (so verifiers know it before it signs); retired still verify."""

    def __init__(self, keys: list[SigningKey]) -> None:
        self.keys = keys

    @classmethod
    def ensure(cls, keys: list[SigningKey], now: int) -> tuple[KeyRing, bool]:
        """A ring with exactly one current and one next key; True when keys had to be created."""
        changed = False
        if not any(k.status == "current" for k in keys):
            keys = [*keys, new_signing_key("current", now)]
            changed = True
        if not any(k.status == "next" for k in keys):
            keys = [*keys, new_signing_key("next", now)]
            changed = True
        return cls(keys), changed

    @property
    def current(self) -> SigningKey:
        return next(k for k in self.keys if k.status == "current")

    @property
    def next(self) -> SigningKey:
        return next(k for k in self.keys if k.status == "next")

    def rotate(self, now: int, keep_retired_s: int) -> KeyRing:
        rotated: list[SigningKey] = []
        for key in self.keys:
            if key.status == "current":
                rotated.append(replace(key, status="retired", retired_at=now))
            elif key.status == "next":
                rotated.append(replace(key, status="current"))
            elif key.retired_at + keep_retired_s > now:
                rotated.append(key)
        rotated.append(new_signing_key("next", now))
        return KeyRing(rotated)

    def published(self, now: int, keep_retired_s: int) -> list[SigningKey]:
        return [k for k in self.keys if k.status != "retired" or k.retired_at + keep_retired_s > now]

    def jwks(self, now: int, keep_retired_s: int) -> dict[str, list[dict[str, str]]]:
        out = []
        for key in self.published(now, keep_retired_s):
            private = serialization.load_pem_private_key(key.private_pem, password=None)
            assert isinstance(private, ec.EllipticCurvePrivateKey)
            jwk = json.loads(ECAlgorithm.to_jwk(private.public_key()))
            jwk.update({"kid": key.kid, "use": "sig", "alg": ALGORITHM})
            out.append(jwk)
        return {"keys": out}


def issue_access_token(ring: KeyRing, policy: TokenPolicy, user: User, now: int) -> tuple[str, str, int]:
    """Sign an access JWT with the current key; returns (token, jti, exp)."""
    jti = uuid.uuid4().hex
    exp = now + policy.access_ttl_s
    claims = {
        "iss": policy.issuer,
        "aud": [policy.audience],
        "sub": user.user_id,
        "name": user.username,
        "roles": [r.value for r in user.roles],
        "accounts": list(user.accounts),
        "jti": jti,
        "iat": now,
        "nbf": now,
        "exp": exp,
        "typ": "access",
    }
    key = ring.current
    token = jwt.encode(claims, key.private_pem, algorithm=ALGORITHM, headers={"kid": key.kid})
    return token, jti, exp


def new_refresh_token() -> str:
    return "rt_" + secrets.token_urlsafe(32)
