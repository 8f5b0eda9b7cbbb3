"""Composition root of the normalizer: MD_RAW durable consumer -> domain -> MD publisher, plus the stats RPCs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from decimal import Decimal

import structlog
from nats.aio.msg import Msg
from trade.normalizer.v1 import normalizer_pb2, normalizer_pb2_grpc

from services.normalizer.adapters.codec import decode_prism, decode_raw, symbol_from_subject, venue_from_subject
from services.normalizer.adapters.nats_md import MarketDataPublisher
from services.normalizer.domain.model import Event, Instrument, MalformedMessage
from services.normalizer.domain.normalizer import Normalizer
from services.normalizer.servicer import NormalizerServicer
from services.normalizer.settings import NormalizerSettings
from services.runtime.batches import BatchConsumerSpec, ConsumerHealth, consume_batches
from services.runtime.bus import Bus
from services.runtime.server import Registration
from services.runtime.streams import MARKET_DATA, MARKET_DATA_RAW

SERVICE_NAME = normalizer_pb2.DESCRIPTOR.services_by_name["NormalizerService"].full_name
log = structlog.get_logger("normalizer")


def build_domain(settings: NormalizerSettings) -> Normalizer:
    instruments = [Instrument(i.symbol, Decimal(i.tick_size), Decimal(i.lot_size)) for i in settings.instruments]
    return Normalizer(instruments, decode_prism, time.time_ns())


class RawHandler:
    """A batch of raw messages: decode and normalize each in order, then publish all canonical events pipelined.

    Malformed input is counted, logged and acknowledged with the batch; the batch is acknowledged only after
    every event is stored in MD (a publish failure fails the batch, which comes back: the venue sequences make
    the replay a no-op for messages already handled, and Nats-Msg-Id deduplicates republished events).
    """

    def __init__(self, normalizer: Normalizer, publisher: MarketDataPublisher) -> None:
        self.normalizer = normalizer
        self.publisher = publisher

    async def normalize(self, msg: Msg) -> list[Event]:
        now = time.time_ns()
        try:
            raw = decode_raw(msg.data, msg.subject, now)
        except MalformedMessage as exc:
            self.normalizer.malformed(venue_from_subject(msg.subject), symbol_from_subject(msg.subject), now, str(exc))
            log.warning("normalizer.malformed", subject=msg.subject, error=str(exc))
            return []
        if raw.symbol and not self.normalizer.knows(raw.symbol):
            sequences, venue = await self.publisher.last_sequences(raw.symbol)
            self.normalizer.resume(raw.symbol, raw.venue, sequences)
            log.info(
                "normalizer.resumed",
                symbol=raw.symbol,
                quote=sequences.quote,
                trade=sequences.trade,
                book=sequences.book,
                previous_venue=venue.value,
            )
        outcome = self.normalizer.handle(raw)
        if outcome.error is not None:
            log.warning("normalizer.malformed", subject=msg.subject, venue=raw.venue.value, error=outcome.error)
        elif outcome.gap:
            log.warning("normalizer.gap", subject=msg.subject, venue=raw.venue.value)
        return outcome.events

    async def on_batch(self, msgs: Sequence[Msg]) -> None:
        events: list[Event] = []
        for msg in msgs:
            events += await self.normalize(msg)
        if events:
            await self.publisher.publish(events)


async def build(settings: NormalizerSettings) -> Registration:
    normalizer = build_domain(settings)
    bus = Bus(settings.nats_url, settings.service_name)
    handler = RawHandler(normalizer, MarketDataPublisher(bus))
    spec = BatchConsumerSpec(
        stream=settings.raw_stream,
        durable=settings.durable,
        filter_subject=settings.raw_subject,
        batch=settings.fetch_batch,
    )
    tasks: list[asyncio.Task[None]] = []

    async def start() -> None:
        await bus.connect()
        await bus.ensure_streams([MARKET_DATA, MARKET_DATA_RAW])
        tasks.append(asyncio.create_task(consume_batches(bus, spec, handler.on_batch, ConsumerHealth(spec))))

    async def stop() -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await bus.close()

    return Registration(
        add_to_server=lambda server: normalizer_pb2_grpc.add_NormalizerServiceServicer_to_server(
            NormalizerServicer(normalizer), server
        ),
        service_names=[SERVICE_NAME],
        on_start=[start],
        on_stop=[stop],
    )
