"""Feeds the ingest service from JetStream MD: one durable batch consumer per subject filter."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import structlog
from nats.aio.msg import Msg

from services.runtime.batches import BatchConsumerSpec, ConsumerHealth, ConsumerPhase, consume_batches
from services.runtime.bus import Bus
from services.sink_ticks.adapters.codec import decode_batch
from services.sink_ticks.domain.model import ConsumerView
from services.sink_ticks.domain.service import TickIngest

log = structlog.get_logger("sink_ticks")
STOP_TIMEOUT_S = 15.0


class JetStreamTickSource:
    def __init__(self, bus: Bus, specs: Sequence[BatchConsumerSpec], ingest: TickIngest) -> None:
        self._bus = bus
        self._ingest = ingest
        self._health = [ConsumerHealth(spec) for spec in specs]
        self._tasks: list[asyncio.Task[None]] = []

    async def _handle(self, msgs: Sequence[Msg]) -> None:
        await self._ingest.ingest(decode_batch(m.data for m in msgs))

    def start(self) -> None:
        for health in self._health:
            self._tasks.append(
                asyncio.create_task(
                    consume_batches(self._bus, health.spec, self._handle, health), name=f"sink:{health.spec.durable}"
                )
            )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, stuck = await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT_S)
            if stuck:
                log.error("sink_ticks.consumer_stop_timeout", consumers=sorted(t.get_name() for t in stuck))
        self._tasks.clear()

    async def status(self) -> list[ConsumerView]:
        views = []
        for health in self._health:
            pending = ack_pending = 0
            error = health.last_error
            with contextlib.suppress(Exception):
                info = await self._bus.js.consumer_info(health.spec.stream, health.spec.durable, timeout=1.0)
                pending, ack_pending = info.num_pending or 0, info.num_ack_pending or 0
            state = health.phase.value if health.phase != ConsumerPhase.STARTING else "reconnecting"
            views.append(
                ConsumerView(
                    stream=health.spec.stream,
                    consumer=health.spec.durable,
                    filter_subject=health.spec.filter_subject,
                    state=state,
                    pending_messages=pending,
                    ack_pending=ack_pending,
                    last_acked_stream_sequence=health.last_acked_stream_sequence,
                    last_ack_time_ns=health.last_ack_time_ns,
                    last_error=error,
                )
            )
        return views
