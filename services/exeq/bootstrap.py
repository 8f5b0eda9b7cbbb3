"""Composition root of exeq: ORDERS -> router -> live-gateway; parent orders -> engine -> OMS children;
ORDERS child events -> engine; engine -> EXEQ; md.trade -> POV parents."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from decimal import Decimal

import grpc
from nats.js import api
from trade.exeq.v1 import exeq_pb2, exeq_pb2_grpc
from trade.oms.v1 import events_pb2 as oms_events_pb2

from services.exeq.adapters.ids import UlidGenerator
from services.exeq.adapters.live_gateway import LiveGatewayClient
from services.exeq.adapters.nats_io import (
    BatchSource,
    JetStreamParentSink,
    MarketTradeFeed,
    child_events_handler,
    load_parents,
    router_handler,
    subscribe_parent_events,
)
from services.exeq.adapters.oms import OmsChildGateway, OmsPlacementRecord
from services.exeq.domain.engine import EngineConfig, ExecutionEngine
from services.exeq.domain.model import Instrument
from services.exeq.domain.ports import ChildOrderGateway, Clock
from services.exeq.domain.router import PlacementRecord, Router, VenueGateway
from services.exeq.domain.slicing import VolumeProfile
from services.exeq.servicer import ExeqServicer
from services.exeq.settings import ExeqSettings
from services.runtime.batches import BatchConsumerSpec
from services.runtime.bus import Bus
from services.runtime.clients import insecure_channel
from services.runtime.server import Registration
from services.runtime.streams import EXEQ, ORDERS

SERVICE_NAME = exeq_pb2.DESCRIPTOR.services_by_name["ExeqService"].full_name


class SystemClock:
    def now_ns(self) -> int:
        return time.time_ns()


def instruments(settings: ExeqSettings) -> dict[str, Instrument]:
    return {i.symbol: Instrument(i.symbol, Decimal(i.lot_size), i.venue) for i in settings.instruments}


def consumer_spec(settings: ExeqSettings, durable: str, max_in_flight: int) -> BatchConsumerSpec:
    return BatchConsumerSpec(
        stream=settings.orders_stream,
        durable=durable,
        filter_subject=settings.orders_subject,
        batch=settings.router_batch,
        ack_wait_s=settings.ack_wait_s,
        max_in_flight=max_in_flight,
        deliver_policy=api.DeliverPolicy.NEW if settings.deliver_new_on_create else api.DeliverPolicy.ALL,
    )


@dataclass
class Exeq:
    """The running pieces of exeq (the service, or an in-process instance in tests)."""

    settings: ExeqSettings
    bus: Bus
    router: Router[oms_events_pb2.OrderEvent]
    engine: ExecutionEngine
    router_source: BatchSource
    child_source: BatchSource
    trades: MarketTradeFeed
    channels: list[grpc.aio.Channel] = field(default_factory=list)

    async def start(self) -> None:
        await self.bus.connect()
        await self.bus.ensure_streams([ORDERS, EXEQ])
        parents = await load_parents(self.bus, self.settings.exeq_stream, self.settings.parents_filter)
        self.engine.restore(parents)
        await self.child_source.start()
        await self.router_source.start()
        await self.trades.start()

    async def stop(self) -> None:
        await self.trades.stop()
        await self.router_source.stop()
        await self.child_source.stop()
        await self.engine.stop()
        await self.bus.close()
        for channel in self.channels:
            await channel.close()

    def servicer(self) -> ExeqServicer:
        prefix = self.settings.parent_subject_prefix
        return ExeqServicer(
            self.engine,
            lambda account_id: subscribe_parent_events(self.bus, prefix, account_id),
            self.settings.stream_heartbeat_s,
        )


def compose(
    settings: ExeqSettings,
    *,
    gateway: VenueGateway[oms_events_pb2.OrderEvent] | None = None,
    children: ChildOrderGateway | None = None,
    placements: PlacementRecord[oms_events_pb2.OrderEvent] | None = None,
    clock: Clock | None = None,
) -> Exeq:
    bus = Bus(settings.nats_url, settings.service_name)
    channels: list[grpc.aio.Channel] = []
    if gateway is None:
        channel = insecure_channel(settings.live_gateway_target, settings.gateway_deadline_s)
        channels.append(channel)
        gateway = LiveGatewayClient(channel, settings.gateway_deadline_s)
    oms_channel = insecure_channel(settings.oms_target, settings.oms_deadline_s)
    channels.append(oms_channel)
    if children is None:
        children = OmsChildGateway(oms_channel, settings.oms_deadline_s)
    if placements is None:
        placements = OmsPlacementRecord(oms_channel, settings.oms_deadline_s)
    known = instruments(settings)
    router: Router[oms_events_pb2.OrderEvent] = Router(
        gateway,
        {s: i.venue for s, i in known.items()},
        asyncio.sleep,
        settings.fallback_venue,
        placements=placements,
    )
    engine = ExecutionEngine(
        children,
        JetStreamParentSink(bus, settings.parent_subject_prefix),
        clock or SystemClock(),
        asyncio.sleep,
        UlidGenerator(),
        known,
        VolumeProfile([Decimal(w) for w in settings.vwap_profile]),
        EngineConfig(
            max_participation_rate=Decimal(settings.max_participation_rate),
            pov_min_child_lots=settings.pov_min_child_lots,
        ),
    )
    return Exeq(
        settings=settings,
        bus=bus,
        router=router,
        engine=engine,
        router_source=BatchSource(
            bus, consumer_spec(settings, settings.router_durable, settings.router_max_in_flight), router_handler(router)
        ),
        child_source=BatchSource(
            bus, consumer_spec(settings, settings.children_durable, 1), child_events_handler(engine)
        ),
        trades=MarketTradeFeed(bus, settings.md_trade_prefix, engine),
        channels=channels,
    )


async def build(settings: ExeqSettings) -> Registration:
    exeq = compose(settings)
    return Registration(
        add_to_server=lambda server: exeq_pb2_grpc.add_ExeqServiceServicer_to_server(exeq.servicer(), server),
        service_names=[SERVICE_NAME],
        on_start=[exeq.start],
        on_stop=[exeq.stop],
    )
