"""Composition root of pnl: FILLS -> PnlService <- md.quote marks; snapshots -> PNL; plus the PnL RPCs."""

from __future__ import annotations

import time
from dataclasses import dataclass

from trade.pnl.v1 import events_pb2, pnl_pb2, pnl_pb2_grpc

from services.pnl.adapters import jetstream
from services.pnl.adapters.consumer import FillConsumer, JetStreamFillLog
from services.pnl.adapters.daily import DailySnapshotStore
from services.pnl.adapters.hub import PnlHub
from services.pnl.adapters.marks import QuoteMarks
from services.pnl.adapters.publisher import JetStreamSnapshotPublisher
from services.pnl.adapters.scheduler import EndOfDayScheduler
from services.pnl.domain.ledger import PnlLedger
from services.pnl.domain.service import PnlService
from services.pnl.servicer import PnlServicer
from services.pnl.settings import PnlSettings
from services.runtime.batches import BatchConsumerSpec
from services.runtime.bus import Bus
from services.runtime.server import Registration
from services.runtime.streams import FILLS, PNL

SERVICE_NAME = pnl_pb2.DESCRIPTOR.services_by_name["PnlService"].full_name


class SystemClock:
    def now_ns(self) -> int:
        return time.time_ns()


@dataclass
class Pnl:
    """The running pieces of pnl (the service, or an in-process instance in tests)."""

    settings: PnlSettings
    bus: Bus
    service: PnlService
    hub: PnlHub
    daily: DailySnapshotStore
    marks: QuoteMarks
    consumer: FillConsumer
    scheduler: EndOfDayScheduler

    async def _load_daily(self) -> None:
        s = self.settings
        end = await jetstream.last_sequence(self.bus, s.pnl_stream)
        for _, data in await jetstream.replay(self.bus, s.pnl_stream, s.pnl_subject, end, s.replay_message_timeout_s):
            self.daily.add_pb(events_pb2.PnlSnapshot.FromString(data))

    async def start(self, *, connect: bool = True) -> None:
        if connect:
            await self.bus.connect()
        await self.bus.ensure_streams([FILLS, PNL])
        await self._load_daily()
        await self.marks.start()
        await self.consumer.start()
        if self.settings.end_of_day:
            self.scheduler.start()

    async def stop(self) -> None:
        await self.scheduler.stop()
        await self.consumer.stop()
        await self.marks.stop()
        await self.bus.close()

    def servicer(self) -> PnlServicer:
        s = self.settings
        return PnlServicer(self.service, self.hub, self.daily, s.min_stream_interval_ms, s.heartbeat_interval_s)


def compose(settings: PnlSettings, bus: Bus | None = None) -> Pnl:
    bus = bus or Bus(settings.nats_url, settings.service_name)
    hub, daily, clock = PnlHub(), DailySnapshotStore(), SystemClock()
    service = PnlService(
        PnlLedger(settings.reporting_currency),
        JetStreamSnapshotPublisher(bus, settings.pnl_subject_prefix),
        daily,
        hub,
        clock,
        JetStreamFillLog(bus, settings.fills_stream, settings.account_fills_subject, settings.replay_message_timeout_s),
    )
    marks = QuoteMarks(bus, service, settings.quote_subject, settings.md_stream, settings.quote_subject_prefix)
    spec = BatchConsumerSpec(
        stream=settings.fills_stream,
        durable=settings.durable,
        filter_subject=settings.fills_subject,
        batch=settings.batch_size,
        ack_wait_s=settings.ack_wait_s,
    )
    consumer = FillConsumer(bus, service, spec, marks.prime, settings.replay_message_timeout_s)
    return Pnl(settings, bus, service, hub, daily, marks, consumer, EndOfDayScheduler(service, clock))


async def build(settings: PnlSettings) -> Registration:
    pnl = compose(settings)
    return Registration(
        add_to_server=lambda server: pnl_pb2_grpc.add_PnlServiceServicer_to_server(pnl.servicer(), server),
        service_names=[SERVICE_NAME],
        on_start=[pnl.start],
        on_stop=[pnl.stop],
    )
