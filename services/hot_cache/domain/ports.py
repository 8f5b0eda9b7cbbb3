"""What the hot-cache domain needs from the outside world."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from services.hot_cache.domain.model import BookView, CachedValue, CacheKind, CacheUpdate


class CacheStore(Protocol):
    async def put_many(self, updates: Sequence[CacheUpdate]) -> int:
        """Store each update unless the key holds an equal or higher sequence; returns how many were stored."""
        ...

    async def get_many(self, keys: Sequence[tuple[CacheKind, str]]) -> list[CachedValue | None]: ...

    async def symbols(self, kind: CacheKind) -> list[str]: ...


class BookEncoder(Protocol):
    def __call__(self, view: BookView) -> bytes: ...
