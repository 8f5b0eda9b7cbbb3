"""Composition root of ptrc: JetStream FILLS -> PositionService -> POSITIONS, plus the position RPCs."""

from __future__ import annotations

from dataclasses import dataclass

from trade.ptrc.v1 import ptrc_pb2, ptrc_pb2_grpc

from services.ptrc.adapters.consumer import FillConsumer
from services.ptrc.adapters.fill_log import JetStreamFillLog
from services.ptrc.adapters.hub import PositionHub
from services.ptrc.adapters.publisher import JetStreamPositionPublisher
from services.ptrc.domain.book import PositionBook
from services.ptrc.domain.service import PositionService
from services.ptrc.servicer import PtrcServicer
from services.ptrc.settings import PtrcSettings
from services.runtime.batches import BatchConsumerSpec
from services.runtime.bus import Bus
from services.runtime.server import Registration
from services.runtime.streams import FILLS, POSITIONS

SERVICE_NAME = ptrc_pb2.DESCRIPTOR.services_by_name["PtrcService"].full_name


@dataclass
class Ptrc:
    """The running pieces of ptrc (the service, or an in-process instance in tests)."""

    settings: PtrcSettings
    bus: Bus
    service: PositionService
    hub: PositionHub
    consumer: FillConsumer

    async def start(self, *, connect: bool = True) -> None:
        if connect:
            await self.bus.connect()
        await self.bus.ensure_streams([FILLS, POSITIONS])
        await self.consumer.start()

    async def stop(self) -> None:
        await self.consumer.stop()
        await self.bus.close()

    def servicer(self) -> PtrcServicer:
        return PtrcServicer(self.service, self.hub, self.settings.heartbeat_interval_s)


def compose(settings: PtrcSettings, bus: Bus | None = None) -> Ptrc:
    bus = bus or Bus(settings.nats_url, settings.service_name)
    hub = PositionHub()
    service = PositionService(
        PositionBook(),
        JetStreamFillLog(bus, settings.fills_stream, settings.replay_message_timeout_s),
        JetStreamPositionPublisher(bus, settings.positions_subject_prefix),
        hub,
        settings.fills_subject,
        settings.account_fills_subject,
    )
    spec = BatchConsumerSpec(
        stream=settings.fills_stream,
        durable=settings.durable,
        filter_subject=settings.fills_subject,
        batch=settings.batch_size,
        ack_wait_s=settings.ack_wait_s,
    )
    return Ptrc(settings, bus, service, hub, FillConsumer(bus, service, spec))


async def build(settings: PtrcSettings) -> Registration:
    ptrc = compose(settings)
    return Registration(
        add_to_server=lambda server: ptrc_pb2_grpc.add_PtrcServiceServicer_to_server(ptrc.servicer(), server),
        service_names=[SERVICE_NAME],
        on_start=[ptrc.start],
        on_stop=[ptrc.stop],
    )
