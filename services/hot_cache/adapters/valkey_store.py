"""Valkey layout: one hash per market key, hc:<kind>:<symbol> = {seq, ts (update time ns), pb (protobuf bytes)},
plus a set hc:symbols:<kind> of cached symbols. Writes go through a server-side script that applies the
sequence guard atomically: a value with an equal or lower sequence than the stored one is ignored."""

from __future__ import annotations

import time
from collections.abc import Sequence

import redis.asyncio as redis

from services.hot_cache.domain.model import CachedValue, CacheKind, CacheUpdate

# KEYS[1] value hash, KEYS[2] symbol set; ARGV seq, update time ns, payload, symbol.
_GUARDED_SET = """
local current = redis.call('HGET', KEYS[1], 'seq')
if current and tonumber(current) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'seq', ARGV[1], 'ts', ARGV[2], 'pb', ARGV[3])
redis.call('SADD', KEYS[2], ARGV[4])
return 1
"""


class ValkeyCacheStore:
    def __init__(self, client: redis.Redis, prefix: str = "hc") -> None:
        self._client = client
        self._prefix = prefix
        self._guarded_set = client.register_script(_GUARDED_SET)

    def key(self, kind: CacheKind, symbol: str) -> str:
        return f"{self._prefix}:{kind.value}:{symbol}"

    def _symbols_key(self, kind: CacheKind) -> str:
        return f"{self._prefix}:symbols:{kind.value}"

    async def put_many(self, updates: Sequence[CacheUpdate]) -> int:
        now = time.time_ns()
        pipe = self._client.pipeline(transaction=False)
        for u in updates:
            await self._guarded_set(
                keys=[self.key(u.kind, u.symbol), self._symbols_key(u.kind)],
                args=[u.sequence, now, u.payload, u.symbol],
                client=pipe,
            )
        results = await pipe.execute()
        return sum(int(r) for r in results)

    async def get_many(self, keys: Sequence[tuple[CacheKind, str]]) -> list[CachedValue | None]:
        pipe = self._client.pipeline(transaction=False)
        for kind, symbol in keys:
            pipe.hmget(self.key(kind, symbol), ["seq", "ts", "pb"])
        rows = await pipe.execute()
        values: list[CachedValue | None] = []
        for (kind, symbol), (seq, ts, pb) in zip(keys, rows, strict=True):
            values.append(None if pb is None else CachedValue(kind, symbol, int(seq), bytes(pb), int(ts)))
        return values

    async def symbols(self, kind: CacheKind) -> list[str]:
        members = await self._client.smembers(self._symbols_key(kind))
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)
