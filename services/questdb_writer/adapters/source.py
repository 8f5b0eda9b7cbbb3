"""Feeds the writer from JetStream: one durable batch consumer per stream (FILLS, ORDERS, PNL)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from nats.aio.msg import Msg

from services.questdb_writer.adapters.codec import decode_batch
from services.questdb_writer.domain.model import Kind
from services.questdb_writer.domain.service import WriterService
from services.runtime.batches import BatchConsumerSpec, ConsumerHealth, consume_batches
from services.runtime.bus import Bus


@dataclass(frozen=True)
class Feed:
    kind: Kind
    spec: BatchConsumerSpec


def _stored_ns(msg: Msg) -> int:
    stamp = msg.metadata.timestamp
    return int(stamp.timestamp() * 1_000_000_000) if stamp is not None else 0


class JetStreamSource:
    def __init__(self, bus: Bus, feeds: Sequence[Feed], service: WriterService) -> None:
        self._bus = bus
        self._feeds = feeds
        self._service = service
        self.health = {feed.kind: ConsumerHealth(feed.spec) for feed in feeds}
        self._tasks: list[asyncio.Task[None]] = []

    def _handler(self, kind: Kind) -> Callable[[Sequence[Msg]], Awaitable[None]]:
        async def handle(msgs: Sequence[Msg]) -> None:
            batch = decode_batch(kind, ((m.data, m.metadata.sequence.stream, _stored_ns(m)) for m in msgs))
            await self._service.ingest(batch)

        return handle

    def start(self) -> None:
        for feed in self._feeds:
            self._tasks.append(
                asyncio.create_task(
                    consume_batches(self._bus, feed.spec, self._handler(feed.kind), self.health[feed.kind]),
                    name=f"questdb-writer:{feed.spec.durable}",
                )
            )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def pending(self) -> dict[Kind, int]:
        """Messages not yet delivered per feed (0 when the server cannot be asked)."""
        out = {}
        for feed in self._feeds:
            out[feed.kind] = 0
            with contextlib.suppress(Exception):
                info = await self._bus.js.consumer_info(feed.spec.stream, feed.spec.durable, timeout=1.0)
                out[feed.kind] = int(info.num_pending or 0) + int(info.num_ack_pending or 0)
        return out
