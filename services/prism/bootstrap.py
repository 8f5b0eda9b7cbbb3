"""Composition root of prism: the matching engine + synthetic participants, the simulation loop, the NATS feed
publisher and the PrismService servicer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import structlog
from trade.prism.v1 import prism_pb2, prism_pb2_grpc

from services.prism.adapters.feed_publisher import NatsFeedPublisher
from services.prism.domain.feed import FeedMessage
from services.prism.domain.instruments import DEFAULT_INSTRUMENTS, Instrument
from services.prism.domain.participants import SimulationConfig
from services.prism.runner import FeedSink, SimulationRunner
from services.prism.servicer import PrismServicer
from services.prism.settings import PrismSettings
from services.runtime.bus import Bus
from services.runtime.server import Registration
from services.runtime.streams import MARKET_DATA_RAW

SERVICE_NAME = prism_pb2.DESCRIPTOR.services_by_name["PrismService"].full_name
log = structlog.get_logger("prism")


class DiscardSink:
    """Feed disabled: messages go nowhere."""

    async def publish(self, messages: Sequence[FeedMessage]) -> None:
        return None


def instruments_for(symbols: Sequence[str]) -> tuple[Instrument, ...]:
    known = {i.symbol: i for i in DEFAULT_INSTRUMENTS}
    unknown = [s for s in symbols if s not in known]
    if unknown:
        raise ValueError(f"no instrument definition for {unknown}")
    return tuple(known[s] for s in symbols)


def build_runner(
    settings: PrismSettings, sink: FeedSink, start_sequences: dict[str, int] | None = None
) -> SimulationRunner:
    return SimulationRunner(
        instruments=instruments_for(settings.symbols),
        config=SimulationConfig(seed=settings.seed),
        sink=sink,
        message_rate=settings.message_rate,
        image_interval_s=settings.image_interval_s,
        warmup_steps=settings.warmup_steps,
        start_sequences=start_sequences or {},
    )


async def build(settings: PrismSettings) -> Registration:
    bus = Bus(settings.nats_url, settings.service_name)
    publisher = NatsFeedPublisher(bus, settings.max_in_flight, settings.publish_ack_timeout_s)
    sink: FeedSink = publisher if settings.feed_enabled else DiscardSink()
    start: dict[str, int] = {}
    if settings.feed_enabled:
        await bus.connect()
        await bus.ensure_streams([MARKET_DATA_RAW])
        start = await publisher.last_sequences(settings.symbols)
        log.info("prism.feed_resumes", sequences=start)
    runner = build_runner(settings, sink, start)
    tasks: list[asyncio.Task[None]] = []

    async def start_loop() -> None:
        tasks.append(asyncio.create_task(runner.run(), name="prism:simulation"))

    async def stop() -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if settings.feed_enabled:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(publisher.flush(), settings.publish_ack_timeout_s)
            await bus.close()

    return Registration(
        add_to_server=lambda server: prism_pb2_grpc.add_PrismServiceServicer_to_server(
            PrismServicer(runner),  # type: ignore[abstract]  # order entry RPCs: base class answers UNIMPLEMENTED
            server,
        ),
        service_names=[SERVICE_NAME],
        on_start=[start_loop],
        on_stop=[stop],
    )
