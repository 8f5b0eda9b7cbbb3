"""Durable authn state in SQLite (WAL, synchronous=FULL): users, API keys, sessions, keys, revocations."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from services.authn.domain.model import ApiKey, RefreshSession, Revocations, Role, SigningKey, User

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
  user_id TEXT PRIMARY KEY, username TEXT UNIQUE NOT NULL, password_hash TEXT NOT NULL,
  roles TEXT NOT NULL, accounts TEXT NOT NULL, disabled INTEGER NOT NULL, create_time_ns INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS api_keys (
  key_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, secret_hash TEXT NOT NULL, label TEXT NOT NULL,
  create_time_ns INTEGER NOT NULL, revoked INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS refresh_sessions (
  token_hash TEXT PRIMARY KEY, user_id TEXT NOT NULL, family_id TEXT NOT NULL, expires_at INTEGER NOT NULL,
  used INTEGER NOT NULL, revoked INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS refresh_family ON refresh_sessions(family_id);
CREATE TABLE IF NOT EXISTS signing_keys (
  kid TEXT PRIMARY KEY, private_pem BLOB NOT NULL, status TEXT NOT NULL, created_at INTEGER NOT NULL,
  retired_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS revoked_jtis (jti TEXT PRIMARY KEY, exp INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS revoked_subjects (user_id TEXT PRIMARY KEY, not_before INTEGER NOT NULL);
"""


class SqliteUserStore:
    """One connection guarded by a lock; every write is its own committed transaction."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def _write(self, sql: str, args: tuple[object, ...]) -> None:
        with self._lock:
            self._db.execute(sql, args)

    def _rows(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # users
    def add_user(self, user: User) -> None:
        self._write("INSERT INTO users VALUES (?,?,?,?,?,?,?)", _user_row(user))

    def update_user(self, user: User) -> None:
        row = _user_row(user)
        self._write(
            "UPDATE users SET username=?, password_hash=?, roles=?, accounts=?, disabled=?, create_time_ns=? "
            "WHERE user_id=?",
            (*row[1:], row[0]),
        )

    def get_user(self, user_id: str) -> User | None:
        rows = self._rows("SELECT * FROM users WHERE user_id=?", (user_id,))
        return _user(rows[0]) if rows else None

    def get_user_by_name(self, username: str) -> User | None:
        rows = self._rows("SELECT * FROM users WHERE username=?", (username,))
        return _user(rows[0]) if rows else None

    def list_users(self, after_username: str, limit: int) -> list[User]:
        rows = self._rows("SELECT * FROM users WHERE username > ? ORDER BY username LIMIT ?", (after_username, limit))
        return [_user(r) for r in rows]

    # API keys
    def add_api_key(self, key: ApiKey) -> None:
        self._write(
            "INSERT INTO api_keys VALUES (?,?,?,?,?,?)",
            (key.key_id, key.user_id, key.secret_hash, key.label, key.create_time_ns, int(key.revoked)),
        )

    def get_api_key(self, key_id: str) -> ApiKey | None:
        rows = self._rows("SELECT * FROM api_keys WHERE key_id=?", (key_id,))
        return _api_key(rows[0]) if rows else None

    def list_api_keys(self, user_id: str) -> list[ApiKey]:
        rows = self._rows("SELECT * FROM api_keys WHERE user_id=? ORDER BY create_time_ns DESC", (user_id,))
        return [_api_key(r) for r in rows]

    def update_api_key(self, key: ApiKey) -> None:
        self._write("UPDATE api_keys SET label=?, revoked=? WHERE key_id=?", (key.label, int(key.revoked), key.key_id))

    # refresh sessions
    def add_refresh(self, session: RefreshSession) -> None:
        self._write(
            "INSERT INTO refresh_sessions VALUES (?,?,?,?,?,?)",
            (
                session.token_hash,
                session.user_id,
                session.family_id,
                session.expires_at,
                int(session.used),
                int(session.revoked),
            ),
        )

    def get_refresh(self, token_hash: str) -> RefreshSession | None:
        rows = self._rows("SELECT * FROM refresh_sessions WHERE token_hash=?", (token_hash,))
        if not rows:
            return None
        h, user_id, family, exp, used, revoked = rows[0]
        return RefreshSession(str(h), str(user_id), str(family), int(exp), bool(used), bool(revoked))  # type: ignore[call-overload]

    def update_refresh(self, session: RefreshSession) -> None:
        self._write(
            "UPDATE refresh_sessions SET used=?, revoked=? WHERE token_hash=?",
            (int(session.used), int(session.revoked), session.token_hash),
        )

    def revoke_refresh_family(self, family_id: str) -> None:
        self._write("UPDATE refresh_sessions SET revoked=1 WHERE family_id=?", (family_id,))

    def revoke_user_refresh(self, user_id: str) -> None:
        self._write("UPDATE refresh_sessions SET revoked=1 WHERE user_id=?", (user_id,))

    # signing keys
    def signing_keys(self) -> list[SigningKey]:
        rows = self._rows(
            "SELECT kid, private_pem, status, created_at, retired_at FROM signing_keys ORDER BY created_at"
        )
        return [SigningKey(str(k), bytes(p), str(s), int(c), int(r)) for k, p, s, c, r in rows]  # type: ignore[call-overload]

    def save_signing_keys(self, keys: list[SigningKey]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM signing_keys")
                self._db.executemany(
                    "INSERT INTO signing_keys VALUES (?,?,?,?,?)",
                    [(k.kid, k.private_pem, k.status, k.created_at, k.retired_at) for k in keys],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    # revocations
    def load_revocations(self) -> Revocations:
        jtis = {str(j): int(e) for j, e in self._rows("SELECT jti, exp FROM revoked_jtis")}  # type: ignore[call-overload]
        subjects = {str(u): int(n) for u, n in self._rows("SELECT user_id, not_before FROM revoked_subjects")}  # type: ignore[call-overload]
        return Revocations(jtis, subjects)

    def revoke_jti(self, jti: str, exp: int) -> None:
        self._write("INSERT OR REPLACE INTO revoked_jtis VALUES (?,?)", (jti, exp))

    def revoke_subject(self, user_id: str, not_before: int) -> None:
        self._write("INSERT OR REPLACE INTO revoked_subjects VALUES (?,?)", (user_id, not_before))


def _user_row(user: User) -> tuple[object, ...]:
    return (
        user.user_id,
        user.username,
        user.password_hash,
        json.dumps([r.value for r in user.roles]),
        json.dumps(list(user.accounts)),
        int(user.disabled),
        user.create_time_ns,
    )


def _user(row: tuple[object, ...]) -> User:
    user_id, username, password_hash, roles, accounts, disabled, created = row
    return User(
        user_id=str(user_id),
        username=str(username),
        password_hash=str(password_hash),
        roles=tuple(Role(r) for r in json.loads(str(roles))),
        accounts=tuple(json.loads(str(accounts))),
        disabled=bool(disabled),
        create_time_ns=int(created),  # type: ignore[call-overload]
    )


def _api_key(row: tuple[object, ...]) -> ApiKey:
    key_id, user_id, secret_hash, label, created, revoked = row
    return ApiKey(str(key_id), str(user_id), str(secret_hash), str(label), int(created), bool(revoked))  # type: ignore[call-overload]
