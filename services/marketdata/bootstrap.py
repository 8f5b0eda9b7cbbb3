"""Composition root of marketdata: MD ordered consumers -> in-process hub -> client streams; bars from QuestDB."""

from __future__ import annotations

from typing import Any

from trade.marketdata.v1 import marketdata_pb2

from services.marketdata.adapters.batches import encode_quotes, encode_trades
from services.marketdata.adapters.nats_source import NatsMarketDataSource
from services.marketdata.adapters.questdb_bars import QuestDbBars
from services.marketdata.domain.bars import BarStore
from services.marketdata.domain.hub import MarketData, QueueLimits
from services.marketdata.servicer import MarketDataServicer, add_to_server
from services.marketdata.settings import MarketDataSettings
from services.runtime.bus import Bus
from services.runtime.server import Registration
from services.runtime.streams import MARKET_DATA

SERVICE_NAME = marketdata_pb2.DESCRIPTOR.services_by_name["MarketDataService"].full_name


def build_hub(settings: MarketDataSettings) -> MarketData[Any]:
    limits = QueueLimits(
        settings.quote_queue_symbols,
        settings.trade_queue_size,
        settings.book_queue_size,
        settings.batched_queue_updates,
    )
    return MarketData(lambda item: str(item.symbol), limits, encode_quotes, encode_trades)


def build_servicer(settings: MarketDataSettings, md: MarketData[Any], bars: BarStore) -> MarketDataServicer:
    return MarketDataServicer(md, bars, settings)


async def build(settings: MarketDataSettings) -> Registration:
    md = build_hub(settings)
    bus = Bus(settings.nats_url, settings.service_name)
    source = NatsMarketDataSource(bus, md, settings.book_replay_s)
    bars = QuestDbBars(settings.questdb_url, settings.bars_table)

    async def start() -> None:
        await bus.connect()
        await bus.ensure_streams([MARKET_DATA])
        await source.start()

    async def stop() -> None:
        await source.stop()
        await bus.close()
        await bars.close()

    return Registration(
        add_to_server=lambda server: add_to_server(build_servicer(settings, md, bars), server),
        service_names=[SERVICE_NAME],
        on_start=[start],
        on_stop=[stop],
    )
