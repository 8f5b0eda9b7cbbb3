"""Durable JetStream consumers of the OMS: venue execution reports (EXEC) and kill-switch events (RISK).

Both are at-least-once; the handlers are idempotent (report_id / fill_id / an already pending cancel), and a
handler that fails (journal unavailable) leaves its batch unacknowledged so it is delivered again."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import structlog
from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from nats.js import api
from trade.live_gateway.v1 import events_pb2 as exec_pb2
from trade.risk.v1 import events_pb2 as risk_events_pb2

from services.oms.adapters.codec import kill_switch_from_pb, report_from_pb
from services.oms.domain.model import VenueReport
from services.oms.domain.service import Oms
from services.runtime.batches import BatchConsumerSpec, ConsumerHealth, consume_batches
from services.runtime.bus import Bus

log = structlog.get_logger("oms.consumers")


class OmsConsumers:
    def __init__(self, bus: Bus, oms: Oms, exec_spec: BatchConsumerSpec, killswitch_spec: BatchConsumerSpec) -> None:
        self.bus = bus
        self.oms = oms
        self.exec_health = ConsumerHealth(exec_spec)
        self.killswitch_health = ConsumerHealth(killswitch_spec)
        self._specs = (exec_spec, killswitch_spec)
        self._tasks: list[asyncio.Task[None]] = []

    async def on_reports(self, batch: Sequence[Msg]) -> None:
        """Different orders concurrently (each report is a journal round trip), one order's reports in order."""
        by_order: dict[str, list[VenueReport]] = {}
        for msg in batch:
            try:
                pb = exec_pb2.ExecutionReport.FromString(msg.data)
                report = report_from_pb(pb)
            except (DecodeError, ValueError, ArithmeticError) as exc:
                log.error("oms.report_undecodable", subject=msg.subject, error=str(exc))
                continue
            if report is not None:
                by_order.setdefault(report.order_id, []).append(report)
        if len(by_order) == 1:
            await self._apply_in_order(next(iter(by_order.values())))
            return
        outcomes = await asyncio.gather(*(self._apply_in_order(r) for r in by_order.values()), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome  # the whole batch is delivered again; applied reports are idempotent

    async def _apply_in_order(self, reports: list[VenueReport]) -> None:
        for report in reports:
            await self.oms.on_report(report)

    async def on_kill_switch(self, batch: Sequence[Msg]) -> None:
        for msg in batch:
            try:
                ks = kill_switch_from_pb(risk_events_pb2.KillSwitchEvent.FromString(msg.data))
            except DecodeError as exc:
                log.error("oms.killswitch_undecodable", subject=msg.subject, error=str(exc))
                continue
            if ks is not None:
                await self.oms.on_kill_switch(ks)

    def start(self) -> None:
        exec_spec, killswitch_spec = self._specs
        self._tasks = [
            asyncio.create_task(consume_batches(self.bus, exec_spec, self.on_reports, self.exec_health)),
            asyncio.create_task(
                consume_batches(self.bus, killswitch_spec, self.on_kill_switch, self.killswitch_health)
            ),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []


def killswitch_deliver_policy() -> api.DeliverPolicy:
    """A new kill-switch consumer starts at new events: old, released switches must not cancel today's orders."""
    return api.DeliverPolicy.NEW
