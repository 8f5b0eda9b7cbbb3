"""authn use cases with a SQLite store in a temp dir and fakes for hashing, OPA and the clock."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest

from services.authn.adapters.sqlite_store import SqliteUserStore
from services.authn.domain.model import Revocations, Role
from services.authn.domain.service import Authn
from services.authn.domain.tokens import TokenPolicy
from services.runtime.errors import DomainError, ErrorKind

POLICY = TokenPolicy(
    issuer="iss", audience="aud", access_ttl_s=900, refresh_ttl_s=3600, retired_key_keep_s=960, key_propagation_s=35
)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def now(self) -> float:
        return self.t


class PlainHasher:
    def hash(self, secret: str) -> str:
        return "plain:" + secret

    def verify(self, hashed: str, secret: str) -> bool:
        return hashed == "plain:" + secret


class RecordingSink:
    def __init__(self) -> None:
        self.published: list[Revocations] = []

    async def publish(self, revocations: Revocations) -> None:
        self.published.append(revocations)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def authn(tmp_path: Path, clock: FakeClock, sink: RecordingSink) -> Authn:
    service = Authn(SqliteUserStore(tmp_path / "authn.db"), PlainHasher(), sink, clock, POLICY)
    service.create_user("alice", "correct-horse-1", [Role.TRADER], ["ACC-1"])
    return service


def _claims(authn: Authn, token: str) -> dict[str, object]:
    header = jwt.get_unverified_header(token)
    key = next(k for k in authn.jwks()["keys"] if k["kid"] == header["kid"])
    public = jwt.PyJWK(key).key
    claims: dict[str, object] = jwt.decode(
        token,
        public,
        algorithms=["ES256"],
        audience="aud",
        issuer="iss",
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    return claims


def test_password_login_issues_a_signed_access_token_with_roles_and_accounts(authn: Authn, clock: FakeClock) -> None:
    user, tokens = authn.login_password("alice", "correct-horse-1")
    claims = _claims(authn, tokens.access_token)
    assert claims["sub"] == user.user_id
    assert claims["roles"] == ["trader"] and claims["accounts"] == ["ACC-1"]
    assert claims["exp"] == int(clock.t) + 900 and claims["typ"] == "access"
    assert jwt.get_unverified_header(tokens.access_token)["kid"] == authn.ring.current.kid


def test_wrong_password_and_unknown_user_are_the_same_error(authn: Authn) -> None:
    for username, password in (("alice", "nope-nope-nope"), ("mallory", "correct-horse-1")):
        with pytest.raises(DomainError) as caught:
            authn.login_password(username, password)
        assert caught.value.reason == "INVALID_CREDENTIALS"
        assert caught.value.kind is ErrorKind.UNAUTHENTICATED


def test_refresh_is_single_use_and_reuse_kills_the_family(authn: Authn) -> None:
    _, first = authn.login_password("alice", "correct-horse-1")
    second = authn.refresh(first.refresh_token)
    with pytest.raises(DomainError, match="already used"):
        authn.refresh(first.refresh_token)
    with pytest.raises(DomainError):
        authn.refresh(second.refresh_token)


def test_expired_refresh_token_is_refused(authn: Authn, clock: FakeClock) -> None:
    _, tokens = authn.login_password("alice", "correct-horse-1")
    clock.t += 3601
    with pytest.raises(DomainError) as caught:
        authn.refresh(tokens.refresh_token)
    assert caught.value.reason == "TOKEN_REVOKED"


async def test_logout_revokes_the_jti_and_publishes_to_the_edge(authn: Authn, sink: RecordingSink) -> None:
    _, tokens = authn.login_password("alice", "correct-horse-1")
    await authn.logout(tokens.access_jti, tokens.access_expires_at, tokens.refresh_token)
    assert tokens.access_jti in sink.published[-1].jtis
    with pytest.raises(DomainError):
        authn.refresh(tokens.refresh_token)


async def test_revocations_are_forgotten_once_the_token_expired(authn: Authn, clock: FakeClock) -> None:
    await authn.revoke_token("jti-1", int(clock.t) + 10)
    assert "jti-1" in authn.revocations().jtis
    clock.t += 11
    assert "jti-1" not in authn.revocations().jtis


async def test_disabling_a_user_revokes_earlier_tokens_and_blocks_login(
    authn: Authn, sink: RecordingSink, clock: FakeClock
) -> None:
    user, _ = authn.login_password("alice", "correct-horse-1")
    await authn.disable_user(user.user_id)
    assert sink.published[-1].subjects[user.user_id] > int(clock.t)
    with pytest.raises(DomainError) as caught:
        authn.login_password("alice", "correct-horse-1")
    assert caught.value.reason == "USER_DISABLED"


def test_api_key_login_and_revocation(authn: Authn) -> None:
    alice = authn.store.get_user_by_name("alice")
    assert alice is not None
    key, full = authn.create_api_key(alice.user_id, "bot")
    user, _ = authn.login_api_key(full)
    assert user.username == "alice"
    authn.revoke_api_key(alice.user_id, key.key_id)
    with pytest.raises(DomainError):
        authn.login_api_key(full)
    with pytest.raises(DomainError) as caught:
        authn.login_api_key("no-dot")
    assert caught.value.kind is ErrorKind.INVALID_ARGUMENT


def test_api_keys_are_stored_hashed(authn: Authn) -> None:
    alice = authn.store.get_user_by_name("alice")
    assert alice is not None
    key, full = authn.create_api_key(alice.user_id, "bot")
    stored = authn.store.get_api_key(key.key_id)
    assert stored is not None and full.split(".", 1)[1] not in stored.secret_hash


def test_create_user_reports_every_bad_field(authn: Authn) -> None:
    with pytest.raises(DomainError) as caught:
        authn.create_user("A!", "short", [], ["bad account!"])
    assert caught.value.kind is ErrorKind.INVALID_ARGUMENT
    assert {v.field for v in caught.value.violations} == {"username", "password", "roles", "accounts[0]"}
    with pytest.raises(DomainError) as dup:
        authn.create_user("alice", "another-pass-123", [Role.VIEWER], [])
    assert dup.value.kind is ErrorKind.ALREADY_EXISTS


def test_rotation_promotes_the_prepublished_key_and_keeps_the_old_one_verifiable(
    authn: Authn, clock: FakeClock
) -> None:
    _, before = authn.login_password("alice", "correct-horse-1")
    old_kid, next_kid = authn.ring.current.kid, authn.ring.next.kid
    assert {old_kid, next_kid} <= {k["kid"] for k in authn.jwks()["keys"]}
    clock.t += POLICY.key_propagation_s
    authn.rotate_keys()
    assert authn.ring.current.kid == next_kid
    _, after = authn.login_password("alice", "correct-horse-1")
    assert jwt.get_unverified_header(after.access_token)["kid"] == next_kid
    assert _claims(authn, before.access_token)["sub"] == _claims(authn, after.access_token)["sub"]
    clock.t += POLICY.retired_key_keep_s + 1
    assert old_kid not in {k["kid"] for k in authn.jwks()["keys"]}


def test_a_key_younger_than_the_jwks_cache_cannot_start_signing(authn: Authn, clock: FakeClock) -> None:
    clock.t += POLICY.key_propagation_s
    authn.rotate_keys()
    current = authn.ring.current.kid
    clock.t += POLICY.key_propagation_s - 5
    with pytest.raises(DomainError) as caught:
        authn.rotate_keys()
    assert caught.value.reason == "KEY_ROTATION_TOO_SOON" and caught.value.metadata == {"retry_after_s": "5"}
    assert authn.ring.current.kid == current
    clock.t += 5
    authn.rotate_keys()
    assert authn.ring.current.kid != current


def test_keys_survive_a_restart(tmp_path: Path, clock: FakeClock, sink: RecordingSink) -> None:
    first = Authn(SqliteUserStore(tmp_path / "a.db"), PlainHasher(), sink, clock, POLICY)
    again = Authn(SqliteUserStore(tmp_path / "a.db"), PlainHasher(), sink, clock, POLICY)
    assert first.ring.current.kid == again.ring.current.kid
