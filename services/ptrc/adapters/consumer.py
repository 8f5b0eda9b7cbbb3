"""Feeds the position service from JetStream FILLS: first a replay of the log (state rebuilt), then a durable
batch consumer (acknowledged after the batch's events are stored)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import replace

import structlog
from nats.aio.msg import Msg
from nats.js.errors import NotFoundError

from services.ptrc.adapters.codec import MalformedFill, decode_fill
from services.ptrc.domain.model import LoggedFill
from services.ptrc.domain.service import PositionService
from services.runtime.batches import BatchConsumerSpec, ConsumerHealth, consume_batches
from services.runtime.bus import Bus

log = structlog.get_logger("ptrc.consumer")


def decode_batch(msgs: Sequence[Msg]) -> tuple[list[LoggedFill], int]:
    fills, malformed = [], 0
    for msg in msgs:
        try:
            fills.append(LoggedFill(msg.metadata.sequence.stream, decode_fill(msg.data)))
        except MalformedFill as exc:
            malformed += 1
            log.warning("ptrc.malformed_fill", subject=msg.subject, error=str(exc))
    return fills, malformed


class FillConsumer:
    def __init__(self, bus: Bus, service: PositionService, spec: BatchConsumerSpec) -> None:
        self._bus = bus
        self._service = service
        self._spec = spec
        self.health = ConsumerHealth(spec)
        self.malformed = 0
        self._task: asyncio.Task[None] | None = None

    async def _acknowledged_sequence(self) -> int:
        try:
            info = await self._bus.js.consumer_info(self._spec.stream, self._spec.durable)
        except NotFoundError:
            return 0
        return int(info.ack_floor.stream_seq or 0) if info.ack_floor else 0

    async def _handle(self, msgs: Sequence[Msg]) -> None:
        fills, malformed = decode_batch(msgs)
        self.malformed += malformed
        await self._service.handle(fills)

    async def start(self) -> None:
        end = await self._service.rebuild(await self._acknowledged_sequence())
        spec = replace(self._spec, start_sequence=end + 1)
        self.health = ConsumerHealth(spec)
        self._task = asyncio.create_task(
            consume_batches(self._bus, spec, self._handle, self.health), name=f"ptrc:{spec.durable}"
        )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
