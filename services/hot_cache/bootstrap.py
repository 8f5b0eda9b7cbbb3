"""Composition root of hot-cache: JetStream MD -> HotCache (books, sequence guard) -> Valkey; batch read RPCs."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as redis
from nats.js import api
from trade.hot_cache.v1 import hot_cache_pb2, hot_cache_pb2_grpc

from services.hot_cache.adapters.codec import encode_book
from services.hot_cache.adapters.jetstream_source import JetStreamMarketSource
from services.hot_cache.adapters.valkey_store import ValkeyCacheStore
from services.hot_cache.domain.service import HotCache
from services.hot_cache.servicer import HotCacheServicer
from services.hot_cache.settings import HotCacheSettings
from services.runtime.batches import BatchConsumerSpec
from services.runtime.bus import Bus
from services.runtime.server import Registration
from services.runtime.streams import MARKET_DATA

SERVICE_NAME = hot_cache_pb2.DESCRIPTOR.services_by_name["HotCacheService"].full_name


def consumer_specs(settings: HotCacheSettings) -> list[BatchConsumerSpec]:
    subjects = (
        ("quotes", settings.quote_subject),
        ("trades", settings.trade_subject),
        ("books", settings.book_subject),
    )
    return [
        BatchConsumerSpec(
            stream=settings.stream,
            durable=f"{settings.durable_prefix}-{kind}",
            filter_subject=subject,
            batch=settings.batch_size,
            linger_s=settings.linger_s,
            deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT,
        )
        for kind, subject in subjects
    ]


@dataclass
class HotCacheApp:
    settings: HotCacheSettings
    bus: Bus
    valkey: redis.Redis
    store: ValkeyCacheStore
    cache: HotCache
    source: JetStreamMarketSource

    async def start(self) -> None:
        await self.valkey.ping()
        await self.bus.connect()
        await self.bus.ensure_streams([MARKET_DATA])
        self.source.start()

    async def stop(self) -> None:
        await self.source.stop()
        await self.bus.close()
        await self.valkey.aclose()


def compose(settings: HotCacheSettings) -> HotCacheApp:
    valkey = redis.Redis.from_url(settings.valkey_url)
    store = ValkeyCacheStore(valkey, settings.key_prefix)
    cache = HotCache(store, encode_book, settings.book_depth)
    bus = Bus(settings.nats_url, settings.service_name)
    source = JetStreamMarketSource(bus, consumer_specs(settings), cache)
    return HotCacheApp(settings, bus, valkey, store, cache, source)


async def build(settings: HotCacheSettings) -> Registration:
    app = compose(settings)
    return Registration(
        add_to_server=lambda server: hot_cache_pb2_grpc.add_HotCacheServiceServicer_to_server(
            HotCacheServicer(app.cache), server
        ),
        service_names=[SERVICE_NAME],
        on_start=[app.start],
        on_stop=[app.stop],
    )
