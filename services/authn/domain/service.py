"""authn use cases: login, refresh, logout, revocation, user and API key management, key rotation."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import replace

from services.authn.domain.model import (
    ACCOUNT_RE,
    MIN_PASSWORD_LEN,
    USERNAME_RE,
    ApiKey,
    IssuedTokens,
    RefreshSession,
    Revocations,
    Role,
    User,
)
from services.authn.domain.ports import Clock, PasswordHasher, RevocationSink, UserStore
from services.authn.domain.tokens import KeyRing, TokenPolicy, issue_access_token, new_refresh_token
from services.runtime.errors import DomainError, ErrorKind, FieldViolation, Validator, invalid_argument

INVALID_CREDENTIALS = DomainError("INVALID_CREDENTIALS", "invalid credentials", ErrorKind.UNAUTHENTICATED)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Authn:
    """The authn application service. All state lives in the store; keys are cached in a KeyRing."""

    def __init__(
        self,
        store: UserStore,
        hasher: PasswordHasher,
        revocation_sink: RevocationSink,
        clock: Clock,
        policy: TokenPolicy,
    ) -> None:
        self.store = store
        self.hasher = hasher
        self.sink = revocation_sink
        self.clock = clock
        self.policy = policy
        self.ring, changed = KeyRing.ensure(store.signing_keys(), self._now())
        if changed:
            store.save_signing_keys(self.ring.keys)

    def _now(self) -> int:
        return int(self.clock.now())

    # --- login and sessions -------------------------------------------------------------------------

    def login_password(self, username: str, password: str) -> tuple[User, IssuedTokens]:
        check = Validator()
        check.require(bool(username), "password.username", "required")
        check.require(bool(password), "password.password", "required")
        check.raise_if_any()
        user = self.store.get_user_by_name(username)
        if user is None or not self.hasher.verify(user.password_hash, password):
            raise INVALID_CREDENTIALS
        return user, self._issue(self._active(user), family_id=uuid.uuid4().hex)

    def login_api_key(self, api_key: str) -> tuple[User, IssuedTokens]:
        key_id, _, secret = api_key.partition(".")
        if not key_id or not secret:
            raise invalid_argument(FieldViolation("api_key", "expected <key_id>.<secret>"))
        key = self.store.get_api_key(key_id)
        if key is None or key.revoked or not hmac.compare_digest(key.secret_hash, _digest(secret)):
            raise INVALID_CREDENTIALS
        user = self.store.get_user(key.user_id)
        if user is None:
            raise INVALID_CREDENTIALS
        return user, self._issue(self._active(user), family_id=uuid.uuid4().hex)

    def refresh(self, refresh_token: str) -> IssuedTokens:
        if not refresh_token:
            raise invalid_argument(FieldViolation("refresh_token", "required"))
        session = self.store.get_refresh(_digest(refresh_token))
        if session is None or session.revoked or session.expires_at <= self._now():
            raise DomainError("TOKEN_REVOKED", "refresh token is invalid or expired", ErrorKind.UNAUTHENTICATED)
        if session.used:
            # A refresh token used twice means it leaked: end the whole session family.
            self.store.revoke_refresh_family(session.family_id)
            raise DomainError("TOKEN_REVOKED", "refresh token was already used", ErrorKind.UNAUTHENTICATED)
        self.store.update_refresh(replace(session, used=True))
        user = self.store.get_user(session.user_id)
        if user is None:
            raise DomainError("TOKEN_REVOKED", "user no longer exists", ErrorKind.UNAUTHENTICATED)
        return self._issue(self._active(user), family_id=session.family_id)

    async def logout(self, jti: str, exp: int, refresh_token: str = "") -> None:
        if refresh_token:
            session = self.store.get_refresh(_digest(refresh_token))
            if session is not None:
                self.store.revoke_refresh_family(session.family_id)
        await self.revoke_token(jti, exp)

    async def revoke_token(self, jti: str, exp: int = 0) -> None:
        check = Validator()
        check.require(bool(jti), "token_id", "required")
        check.raise_if_any()
        self.store.revoke_jti(jti, exp or self._now() + self.policy.access_ttl_s)
        await self.publish_revocations()

    async def publish_revocations(self) -> None:
        revocations = self.revocations()
        await self.sink.publish(revocations)

    def revocations(self) -> Revocations:
        revocations = self.store.load_revocations()
        revocations.prune(self._now())
        return revocations

    def _active(self, user: User) -> User:
        if user.disabled:
            raise DomainError("USER_DISABLED", "user is disabled", ErrorKind.PERMISSION_DENIED)
        return user

    def _issue(self, user: User, family_id: str) -> IssuedTokens:
        now = self._now()
        token, jti, exp = issue_access_token(self.ring, self.policy, user, now)
        refresh = new_refresh_token()
        refresh_exp = now + self.policy.refresh_ttl_s
        self.store.add_refresh(RefreshSession(_digest(refresh), user.user_id, family_id, refresh_exp))
        return IssuedTokens(token, jti, exp, refresh, refresh_exp)

    # --- keys --------------------------------------------------------------------------------------

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return self.ring.jwks(self._now(), self.policy.retired_key_keep_s)

    def reload_keys(self) -> None:
        """Pick up a rotation done by another process sharing the store."""
        self.ring = KeyRing(self.store.signing_keys())

    def rotate_keys(self) -> KeyRing:
        published_s = self._now() - self.ring.next.created_at
        wait_s = self.policy.key_propagation_s - published_s
        if wait_s > 0:
            raise DomainError(
                "KEY_ROTATION_TOO_SOON",
                f"the next key has been published for {published_s}s; verifiers cache the JWKS for "
                f"{self.policy.key_propagation_s}s: rotate again in {wait_s}s",
                ErrorKind.FAILED_PRECONDITION,
                metadata={"retry_after_s": str(wait_s)},
            )
        self.ring = self.ring.rotate(self._now(), self.policy.retired_key_keep_s)
        self.store.save_signing_keys(self.ring.keys)
        return self.ring

    # --- users and API keys -------------------------------------------------------------------------

    def create_user(self, username: str, password: str, roles: list[Role], accounts: list[str]) -> User:
        check = Validator()
        check.require(bool(USERNAME_RE.match(username)), "username", "3-64 characters of [a-z0-9_.-]")
        check.require(len(password) >= MIN_PASSWORD_LEN, "password", f"at least {MIN_PASSWORD_LEN} characters")
        check.require(bool(roles), "roles", "at least one role")
        for i, account in enumerate(accounts):
            check.require(bool(ACCOUNT_RE.match(account)), f"accounts[{i}]", "1-64 characters of [A-Za-z0-9_.-]")
        check.raise_if_any()
        if self.store.get_user_by_name(username) is not None:
            raise DomainError("USER_EXISTS", f"user {username!r} already exists", ErrorKind.ALREADY_EXISTS)
        user = User(
            user_id="u_" + uuid.uuid4().hex[:20],
            username=username,
            password_hash=self.hasher.hash(password),
            roles=tuple(dict.fromkeys(roles)),
            accounts=tuple(dict.fromkeys(accounts)),
            create_time_ns=int(self.clock.now() * 1e9),
        )
        self.store.add_user(user)
        return user

    def get_user(self, user_id: str) -> User:
        user = self.store.get_user(user_id) if user_id else None
        if user is None:
            raise DomainError("USER_NOT_FOUND", f"no user {user_id!r}", ErrorKind.NOT_FOUND)
        return user

    def list_users(self, page_size: int, page_token: str) -> tuple[list[User], str]:
        size = 100 if page_size <= 0 else min(page_size, 1000)
        users = self.store.list_users(page_token, size + 1)
        more = len(users) > size
        users = users[:size]
        return users, (users[-1].username if more and users else "")

    def set_roles(self, user_id: str, roles: list[Role]) -> User:
        check = Validator()
        check.require(bool(roles), "roles", "at least one role")
        check.raise_if_any()
        user = replace(self.get_user(user_id), roles=tuple(dict.fromkeys(roles)))
        self.store.update_user(user)
        return user

    def set_accounts(self, user_id: str, accounts: list[str]) -> User:
        check = Validator()
        for i, account in enumerate(accounts):
            check.require(bool(ACCOUNT_RE.match(account)), f"accounts[{i}]", "1-64 characters of [A-Za-z0-9_.-]")
        check.raise_if_any()
        user = replace(self.get_user(user_id), accounts=tuple(dict.fromkeys(accounts)))
        self.store.update_user(user)
        return user

    async def disable_user(self, user_id: str) -> User:
        user = replace(self.get_user(user_id), disabled=True)
        self.store.update_user(user)
        self.store.revoke_user_refresh(user_id)
        # Every access token issued up to now (inclusive) stops working at the edge.
        self.store.revoke_subject(user_id, self._now() + 1)
        await self.publish_revocations()
        return user

    def create_api_key(self, user_id: str, label: str) -> tuple[ApiKey, str]:
        user = self._active(self.get_user(user_id))
        secret = secrets.token_urlsafe(32)
        key = ApiKey(
            key_id="ak_" + uuid.uuid4().hex[:16],
            user_id=user.user_id,
            secret_hash=_digest(secret),
            label=label[:200],
            create_time_ns=int(self.clock.now() * 1e9),
        )
        self.store.add_api_key(key)
        return key, f"{key.key_id}.{secret}"

    def list_api_keys(self, user_id: str) -> list[ApiKey]:
        self.get_user(user_id)
        return self.store.list_api_keys(user_id)

    def revoke_api_key(self, user_id: str, key_id: str) -> ApiKey:
        key = self.store.get_api_key(key_id)
        if key is None or key.user_id != user_id:
            raise DomainError("API_KEY_NOT_FOUND", f"no API key {key_id!r} for this user", ErrorKind.NOT_FOUND)
        key = replace(key, revoked=True)
        self.store.update_api_key(key)
        return key
