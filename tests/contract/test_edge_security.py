"""Through the real Envoy edge with real OPA and authn: who gets in, who is refused, and with what status."""

from __future__ import annotations

import base64
import json
import time

import grpc
import pytest
from google.rpc import error_details_pb2
from trade.authn.v1 import authn_pb2

from tests.support.edge import (
    Forger,
    authn_stub,
    bearer,
    code_of,
    login,
    rich_status,
    token_for,
    unknown_key_pem,
    unsigned_token,
)

pytestmark = pytest.mark.usefixtures("mesh")


@pytest.fixture(scope="module")
def forger() -> Forger:
    return Forger.from_store()


def whoami(channel: grpc.Channel, token: str | None, extra: tuple[tuple[str, str], ...] = ()) -> grpc.StatusCode:
    metadata = (bearer(token) if token else ()) + extra
    return code_of(lambda: authn_stub(channel).WhoAmI(authn_pb2.WhoAmIRequest(), metadata=metadata, timeout=5))


def test_no_token_is_unauthenticated(edge: grpc.Channel) -> None:
    assert whoami(edge, None) == grpc.StatusCode.UNAUTHENTICATED


def test_valid_token_reaches_the_service_with_its_identity(edge: grpc.Channel) -> None:
    me = authn_stub(edge).WhoAmI(authn_pb2.WhoAmIRequest(), metadata=bearer(token_for(edge, "trader")), timeout=5)
    assert me.username == "trader"
    assert list(me.roles) == [authn_pb2.ROLE_TRADER]
    assert list(me.accounts) == ["ACC-TRADER-1"]


def test_expired_token_is_rejected(edge: grpc.Channel, forger: Forger) -> None:
    now = int(time.time())
    token = forger.sign(forger.claims(iat=now - 3600, nbf=now - 3600, exp=now - 1800))
    assert whoami(edge, token) == grpc.StatusCode.UNAUTHENTICATED


def test_wrong_audience_is_rejected(edge: grpc.Channel, forger: Forger) -> None:
    token = forger.sign(forger.claims(aud=["someone-else"]))
    with pytest.raises(grpc.RpcError) as caught:
        authn_stub(edge).WhoAmI(authn_pb2.WhoAmIRequest(), metadata=bearer(token), timeout=5)
    # Envoy's jwt_authn answers a valid signature for another audience with 403, not 401.
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "Audiences in Jwt are not allowed" in (caught.value.details() or "")


def test_wrong_issuer_is_rejected(edge: grpc.Channel, forger: Forger) -> None:
    assert whoami(edge, forger.sign(forger.claims(iss="https://evil.example"))) == grpc.StatusCode.UNAUTHENTICATED


def test_alg_none_is_rejected(edge: grpc.Channel, forger: Forger) -> None:
    assert whoami(edge, unsigned_token(forger.claims())) == grpc.StatusCode.UNAUTHENTICATED


def test_unknown_kid_is_rejected(edge: grpc.Channel, forger: Forger) -> None:
    token = forger.sign(forger.claims(), kid="not-a-published-kid", key_pem=unknown_key_pem())
    assert whoami(edge, token) == grpc.StatusCode.UNAUTHENTICATED


def test_signature_by_an_unpublished_key_with_a_known_kid_is_rejected(edge: grpc.Channel, forger: Forger) -> None:
    assert whoami(edge, forger.sign(forger.claims(), key_pem=unknown_key_pem())) == grpc.StatusCode.UNAUTHENTICATED


def test_tampered_signature_is_rejected(edge: grpc.Channel) -> None:
    header, payload, signature = token_for(edge, "viewer").split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    assert whoami(edge, f"{header}.{payload}.{flipped}") == grpc.StatusCode.UNAUTHENTICATED


def test_tampered_payload_is_rejected(edge: grpc.Channel) -> None:
    header, payload, signature = token_for(edge, "viewer").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["roles"] = ["admin"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert whoami(edge, f"{header}.{forged}.{signature}") == grpc.StatusCode.UNAUTHENTICATED


def test_revoked_token_is_rejected(edge: grpc.Channel) -> None:
    token = token_for(edge, "viewer")
    assert whoami(edge, token) == grpc.StatusCode.OK
    authn_stub(edge).Logout(authn_pb2.LogoutRequest(), metadata=bearer(token), timeout=5)
    assert whoami(edge, token) == grpc.StatusCode.UNAUTHENTICATED
    assert whoami(edge, token_for(edge, "viewer")) == grpc.StatusCode.OK


def test_viewer_cannot_call_an_admin_rpc(edge: grpc.Channel) -> None:
    token = token_for(edge, "viewer")
    code = code_of(lambda: authn_stub(edge).ListUsers(authn_pb2.ListUsersRequest(), metadata=bearer(token), timeout=5))
    assert code == grpc.StatusCode.PERMISSION_DENIED


def test_admin_can_call_an_admin_rpc(edge: grpc.Channel) -> None:
    token = token_for(edge, "admin")
    users = authn_stub(edge).ListUsers(authn_pb2.ListUsersRequest(), metadata=bearer(token), timeout=5)
    assert {"admin", "trader", "viewer"} <= {u.username for u in users.users}


def _forged_payload_header() -> tuple[tuple[str, str], ...]:
    claims = {
        "sub": "u_root",
        "name": "root",
        "roles": ["admin"],
        "accounts": ["*"],
        "jti": "x",
        "exp": 2**40,
    }
    encoded = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return (
        ("x-jwt-payload", encoded),
        ("x-trade-user", "u_root"),
        ("x-trade-roles", "admin"),
    )


def test_forged_identity_headers_without_a_token_reach_no_service(edge: grpc.Channel) -> None:
    assert whoami(edge, None, _forged_payload_header()) == grpc.StatusCode.UNAUTHENTICATED


def test_forged_identity_headers_are_replaced_by_the_verified_identity(edge: grpc.Channel) -> None:
    token = token_for(edge, "viewer")
    me = authn_stub(edge).WhoAmI(
        authn_pb2.WhoAmIRequest(), metadata=bearer(token) + _forged_payload_header(), timeout=5
    )
    assert me.username == "viewer"
    assert list(me.roles) == [authn_pb2.ROLE_VIEWER]
    denied = code_of(
        lambda: authn_stub(edge).ListUsers(
            authn_pb2.ListUsersRequest(), metadata=bearer(token) + _forged_payload_header(), timeout=5
        )
    )
    assert denied == grpc.StatusCode.PERMISSION_DENIED


def test_forged_identity_headers_on_a_public_rpc_are_stripped(edge: grpc.Channel) -> None:
    # Login is public (no JWT needed); a forged identity header must still never reach authn as trusted.
    response = login(edge, "viewer")
    assert response.user.username == "viewer"
    code = code_of(
        lambda: authn_stub(edge).Logout(authn_pb2.LogoutRequest(), metadata=_forged_payload_header(), timeout=5)
    )
    assert code == grpc.StatusCode.UNAUTHENTICATED


def test_a_disabled_users_tokens_stop_working(edge: grpc.Channel) -> None:
    admin = bearer(token_for(edge, "admin"))
    name = f"tmp{int(time.time() * 1000) % 10**9}"
    created = authn_stub(edge).CreateUser(
        authn_pb2.CreateUserRequest(username=name, password="temporary-pass-123", roles=[authn_pb2.ROLE_VIEWER]),
        metadata=admin,
        timeout=10,
    )
    token = login(edge, name, "temporary-pass-123").tokens.access_token
    assert whoami(edge, token) == grpc.StatusCode.OK
    authn_stub(edge).DisableUser(authn_pb2.DisableUserRequest(user_id=created.user.user_id), metadata=admin, timeout=5)
    assert whoami(edge, token) == grpc.StatusCode.UNAUTHENTICATED
    code = code_of(lambda: login(edge, name, "temporary-pass-123"))
    assert code == grpc.StatusCode.PERMISSION_DENIED


def test_refresh_rotates_and_a_reused_refresh_token_is_refused(edge: grpc.Channel) -> None:
    first = login(edge, "trader").tokens
    second = authn_stub(edge).Refresh(authn_pb2.RefreshRequest(refresh_token=first.refresh_token), timeout=5).tokens
    assert whoami(edge, second.access_token) == grpc.StatusCode.OK
    reuse = code_of(
        lambda: authn_stub(edge).Refresh(authn_pb2.RefreshRequest(refresh_token=first.refresh_token), timeout=5)
    )
    assert reuse == grpc.StatusCode.UNAUTHENTICATED
    # Reuse ends the whole session family: the rotated refresh token is dead too.
    after = code_of(
        lambda: authn_stub(edge).Refresh(authn_pb2.RefreshRequest(refresh_token=second.refresh_token), timeout=5)
    )
    assert after == grpc.StatusCode.UNAUTHENTICATED


def test_api_key_login_works_until_the_key_is_revoked(edge: grpc.Channel) -> None:
    trader = bearer(token_for(edge, "trader"))
    created = authn_stub(edge).CreateApiKey(authn_pb2.CreateApiKeyRequest(label="bot"), metadata=trader, timeout=5)
    via_key = authn_stub(edge).Login(authn_pb2.LoginRequest(api_key=created.secret), timeout=5)
    assert via_key.user.username == "trader"
    assert whoami(edge, via_key.tokens.access_token) == grpc.StatusCode.OK
    authn_stub(edge).RevokeApiKey(
        authn_pb2.RevokeApiKeyRequest(key_id=created.api_key.key_id), metadata=trader, timeout=5
    )
    code = code_of(lambda: authn_stub(edge).Login(authn_pb2.LoginRequest(api_key=created.secret), timeout=5))
    assert code == grpc.StatusCode.UNAUTHENTICATED


def test_trader_cannot_manage_another_users_api_keys(edge: grpc.Channel) -> None:
    admin_id = login(edge, "admin").user.user_id
    trader = bearer(token_for(edge, "trader"))
    code = code_of(
        lambda: authn_stub(edge).ListApiKeys(authn_pb2.ListApiKeysRequest(user_id=admin_id), metadata=trader, timeout=5)
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED


def rotate_when_allowed(edge: grpc.Channel, admin: tuple[tuple[str, str], ...]) -> authn_pb2.RotateSigningKeysResponse:
    """Rotate; when the next key is younger than the edge's JWKS cache, authn says how long to wait: wait, retry."""
    stub = authn_stub(edge)
    try:
        return stub.RotateSigningKeys(authn_pb2.RotateSigningKeysRequest(), metadata=admin, timeout=5)
    except grpc.RpcError as error:
        status = rich_status(error)
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and status is not None
        info = error_details_pb2.ErrorInfo()
        assert status.details[0].Unpack(info) and info.reason == "KEY_ROTATION_TOO_SOON"
        wait_s = int(info.metadata["retry_after_s"])
        assert 0 < wait_s <= 35
        time.sleep(wait_s + 0.5)
    return stub.RotateSigningKeys(authn_pb2.RotateSigningKeysRequest(), metadata=admin, timeout=5)


def test_rotated_signing_key_is_accepted_and_old_tokens_keep_working(edge: grpc.Channel) -> None:
    old_token = token_for(edge, "viewer")
    admin = bearer(token_for(edge, "admin"))
    rotated = rotate_when_allowed(edge, admin)
    new_token = token_for(edge, "viewer")
    header = json.loads(base64.urlsafe_b64decode(new_token.split(".")[0] + "=="))
    assert header["kid"] == rotated.current_kid
    # The new key was pre-published as "next", so the edge verifies it without refetching the JWKS.
    assert whoami(edge, new_token) == grpc.StatusCode.OK
    assert whoami(edge, old_token) == grpc.StatusCode.OK
