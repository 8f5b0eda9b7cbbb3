"""Helpers to call the API through the edge the way a client does: gRPC channels, logins, forged tokens."""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import grpc
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google.rpc import status_pb2
from trade.authn.v1 import authn_pb2, authn_pb2_grpc

from mesh.ports import load_ports
from services.authn.adapters.sqlite_store import SqliteUserStore
from services.authn.settings import AuthnSettings
from services.runtime.status import STATUS_DETAILS_KEY

EDGE = f"127.0.0.1:{load_ports().edge['envoy']}"
DEMO_PASSWORDS = {
    "viewer": "viewer-demo-pass",
    "trader": "trader-demo-pass",
    "trader2": "trader2-demo-pass",
    "risk": "risk-demo-pass!",
    "admin": "admin-demo-pass",
}


def edge_channel() -> grpc.Channel:
    return grpc.insecure_channel(EDGE)


def authn_stub(channel: grpc.Channel) -> authn_pb2_grpc.AuthnServiceStub:
    return authn_pb2_grpc.AuthnServiceStub(channel)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def login(channel: grpc.Channel, username: str, password: str | None = None) -> authn_pb2.LoginResponse:
    request = authn_pb2.LoginRequest(
        password=authn_pb2.PasswordCredential(username=username, password=password or DEMO_PASSWORDS[username])
    )
    response: authn_pb2.LoginResponse = authn_stub(channel).Login(request, timeout=10)
    return response


def token_for(channel: grpc.Channel, username: str) -> str:
    return login(channel, username).tokens.access_token


def rich_status(error: grpc.RpcError) -> status_pb2.Status | None:
    for item in error.trailing_metadata() or ():
        if item.key == STATUS_DETAILS_KEY:
            return status_pb2.Status.FromString(item.value)
    return None


def code_of(call: Any) -> grpc.StatusCode:
    """Run a zero-arg callable; return the status code (OK when it succeeds)."""
    try:
        call()
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


@dataclass
class Forger:
    """Mints tokens with the real current signing key (read from authn's store) but wrong claims."""

    kid: str
    private_pem: bytes

    @classmethod
    def from_store(cls) -> Forger:
        keys = SqliteUserStore(AuthnSettings().db_path).signing_keys()
        current = next(k for k in keys if k.status == "current")
        return cls(current.kid, current.private_pem)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": "trade2026-authn",
            "aud": ["trade2026-api"],
            "sub": "u_forged",
            "name": "forged",
            "roles": ["admin"],
            "accounts": [],
            "jti": uuid.uuid4().hex,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "typ": "access",
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def sign(self, claims: dict[str, Any], kid: str | None = None, key_pem: bytes | None = None) -> str:
        return jwt.encode(claims, key_pem or self.private_pem, algorithm="ES256", headers={"kid": kid or self.kid})


def unknown_key_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(claims: dict[str, Any]) -> str:
    header = {"alg": "none", "typ": "JWT"}
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}."
