"""Feeds the cache from JetStream MD: one durable batch consumer per kind (quote, trade, book), acknowledged
after Valkey stored the batch. A new durable starts at the last message per subject (a cache needs the latest
state, not 24 hours of history); afterwards it resumes where it left off."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from nats.aio.msg import Msg

from services.hot_cache.adapters.codec import decode_batch
from services.hot_cache.domain.service import HotCache
from services.runtime.batches import BatchConsumerSpec, ConsumerHealth, consume_batches
from services.runtime.bus import Bus


class JetStreamMarketSource:
    def __init__(self, bus: Bus, specs: Sequence[BatchConsumerSpec], cache: HotCache) -> None:
        self._bus = bus
        self._cache = cache
        self.health = [ConsumerHealth(spec) for spec in specs]
        self._tasks: list[asyncio.Task[None]] = []

    async def _handle(self, msgs: Sequence[Msg]) -> None:
        batch = decode_batch(m.data for m in msgs)
        self._cache.counters.malformed += batch.malformed
        await self._cache.apply(batch.updates, batch.book_events)

    def start(self) -> None:
        for h in self.health:
            self._tasks.append(
                asyncio.create_task(consume_batches(self._bus, h.spec, self._handle, h), name=f"hc:{h.spec.durable}")
            )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
