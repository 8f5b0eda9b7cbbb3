"""ULID parent order ids: 48-bit millisecond time + 80 random bits, Crockford base32 (26 characters, sortable)."""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid(now_ms: int | None = None) -> str:
    value = ((time.time_ns() // 1_000_000 if now_ms is None else now_ms) << 80) | secrets.randbits(80)
    return "".join(_ALPHABET[(value >> shift) & 31] for shift in range(125, -1, -5))


class UlidGenerator:
    def new_id(self) -> str:
        return ulid()
