"""Composition root of prism: the matching engine + synthetic participants, the simulation loop, the NATS feed
publisher and the PrismService servicer."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from trade.prism.v1 import prism_pb2, prism_pb2_grpc

from services.prism.adapters.feed_publisher import NatsFeedPublisher
from services.prism.domain.feed import FeedMessage
from services.prism.domain.instruments import DEFAULT_INSTRUMENTS, Instrument
from services.prism.domain.participants import SimulationConfig
from services.prism.order_entry import OrderEntry
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
    settings: PrismSettings,
    sink: FeedSink,
    start_sequences: dict[str, int] | None = None,
    first_exec_sequence: int | None = None,
) -> SimulationRunner:
    """The simulation. Execution sequences and venue order ids start above microseconds since the epoch unless
    ``first_exec_sequence`` is given, so a restarted PRISM never reuses a number a client may still hold."""
    return SimulationRunner(
        instruments=instruments_for(settings.symbols),
        config=SimulationConfig(seed=settings.seed),
        sink=sink,
        message_rate=settings.message_rate,
        image_interval_s=settings.image_interval_s,
        warmup_steps=settings.warmup_steps,
        start_sequences=start_sequences or {},
        first_exec_sequence=time.time_ns() // 1000 if first_exec_sequence is None else first_exec_sequence,
        exec_retention_per_account=settings.exec_retention_per_account,
        max_done_orders=settings.max_done_orders,
    )


def build_order_entry(settings: PrismSettings, runner: SimulationRunner) -> OrderEntry:
    return OrderEntry(runner, settings.order_latency_ms / 1000, settings.exec_queue_size)


@dataclass
class Prism:
    """The composed service: the simulation, member order entry and the gRPC registration."""

    runner: SimulationRunner
    entry: OrderEntry
    registration: Registration


async def compose(settings: PrismSettings) -> Prism:
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
    entry = build_order_entry(settings, runner)
    servicer = PrismServicer(runner, entry, settings.heartbeat_interval_s)
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

    registration = Registration(
        add_to_server=lambda server: prism_pb2_grpc.add_PrismServiceServicer_to_server(servicer, server),
        service_names=[SERVICE_NAME],
        on_start=[start_loop],
        on_stop=[stop],
    )
    return Prism(runner, entry, registration)


async def build(settings: PrismSettings) -> Registration:
    return (await compose(settings)).registration
