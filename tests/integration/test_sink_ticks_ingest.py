"""sink-ticks against the real NATS and QuestDB: rows land exactly once, bars follow, replays and a QuestDB
restart mid-ingestion neither lose nor duplicate an acknowledged tick."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from trade.normalizer.v1 import events_pb2
from trade.sink_ticks.v1 import sink_ticks_pb2, sink_ticks_pb2_grpc
from trade.type.v1 import decimal_pb2, market_data_pb2, order_pb2, venue_pb2

from mesh import control
from mesh.ports import load_ports
from services.runtime.bus import Bus
from services.runtime.streams import MARKET_DATA
from services.sink_ticks.bootstrap import SinkTicks, compose
from services.sink_ticks.settings import SinkTicksSettings

pytestmark = pytest.mark.usefixtures("mesh")

QUESTDB = f"http://127.0.0.1:{load_ports().infra['questdb_http']}/exec"


def sql(query: str) -> dict[str, object]:
    url = QUESTDB + "?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=10) as resp:
        body: dict[str, object] = json.loads(resp.read())
    return body


def scalar(query: str) -> int:
    try:
        dataset = sql(query)["dataset"]
    except urllib.error.HTTPError:
        return -1
    assert isinstance(dataset, list)
    return int(dataset[0][0])


def symbol() -> str:
    return f"TEST{uuid.uuid4().hex[:8].upper()}USDT"


def trade_event(
    sym: str, seq: int, t0_ns: int, price: str = "101.25", qty: str = "0.001"
) -> events_pb2.MarketDataEvent:
    return events_pb2.MarketDataEvent(
        event_id=f"trade:{sym}:{seq}",
        publish_time_ns=time.time_ns(),
        trade=market_data_pb2.Trade(
            symbol=sym,
            venue=venue_pb2.VENUE_PRISM,
            trade_id=f"T{seq}",
            price=decimal_pb2.Decimal(value=price),
            quantity=decimal_pb2.Decimal(value=qty),
            aggressor_side=order_pb2.SIDE_BUY,
            sequence=seq,
            event_time_ns=t0_ns + seq * 1_000_000,
            receive_time_ns=t0_ns + seq * 1_000_000 + 500,
        ),
    )


def quote_event(sym: str, seq: int, t0_ns: int) -> events_pb2.MarketDataEvent:
    return events_pb2.MarketDataEvent(
        event_id=f"quote:{sym}:{seq}",
        publish_time_ns=time.time_ns(),
        quote=market_data_pb2.Quote(
            symbol=sym,
            venue=venue_pb2.VENUE_PRISM,
            bid_price=decimal_pb2.Decimal(value="100.10"),
            bid_size=decimal_pb2.Decimal(value="1.5"),
            ask_price=decimal_pb2.Decimal(value="100.20"),
            sequence=seq,
            event_time_ns=t0_ns + seq * 1_000_000,
        ),
    )


async def publish(bus: Bus, events: list[events_pb2.MarketDataEvent], msg_id_suffix: str = "") -> None:
    for start in range(0, len(events), 200):
        chunk = events[start : start + 200]
        await asyncio.gather(
            *(bus.publish(_subject(e), e.SerializeToString(), e.event_id + msg_id_suffix) for e in chunk)
        )


async def publish_retrying(bus: Bus, event: events_pb2.MarketDataEvent) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            await bus.publish(f"md.trade.{event.trade.symbol}", event.SerializeToString(), event.event_id, timeout_s=2)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


def _subject(e: events_pb2.MarketDataEvent) -> str:
    sym = e.trade.symbol if e.HasField("trade") else e.quote.symbol
    return f"md.{e.WhichOneof('payload')}.{sym}"


async def wait_for(predicate: object, limit_s: float = 30.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if await asyncio.to_thread(predicate):
            return
        await asyncio.sleep(0.25)
    raise AssertionError("condition not met in time")


@pytest.fixture
async def bus() -> AsyncIterator[Bus]:
    bus = Bus(SinkTicksSettings().nats_url, "test-sink-ticks")
    await bus.connect()
    await bus.ensure_streams([MARKET_DATA])
    yield bus
    await bus.close()


class Pipeline:
    """An in-process sink with its own durable consumers and tables, filtered to one test symbol."""

    def __init__(self, sym: str) -> None:
        tag = uuid.uuid4().hex[:8]
        self.settings = SinkTicksSettings(
            trades_table=f"test_trades_{tag}",
            quotes_table=f"test_quotes_{tag}",
            bars_view=f"test_ohlcv_{tag}",
            trade_subject=f"md.trade.{sym}",
            quote_subject=f"md.quote.{sym}",
            durable_prefix=f"test-sink-{tag}",
            batch_size=100,
        )
        self.sink: SinkTicks | None = None

    async def start(self) -> SinkTicks:
        self.sink = compose(self.settings)
        await self.sink.start()
        return self.sink

    async def stop(self) -> None:
        if self.sink is not None:
            await self.sink.stop()
            self.sink = None

    def count(self, distinct: bool = False) -> int:
        what = "count_distinct(trade_id)" if distinct else "count()"
        return scalar(f"SELECT {what} FROM {self.settings.trades_table}")

    async def delete_consumers(self, bus: Bus) -> None:
        for kind in ("trades", "quotes"):
            with contextlib.suppress(Exception):
                await bus.js.delete_consumer("MD", f"{self.settings.durable_prefix}-{kind}")

    def drop_tables(self) -> None:
        for stmt in (
            f"DROP MATERIALIZED VIEW IF EXISTS {self.settings.bars_view}",
            f"DROP TABLE IF EXISTS {self.settings.trades_table}",
            f"DROP TABLE IF EXISTS {self.settings.quotes_table}",
        ):
            with contextlib.suppress(Exception):
                sql(stmt)


@pytest.fixture
async def pipeline(bus: Bus) -> AsyncIterator[tuple[Pipeline, str]]:
    sym = symbol()
    pipe = Pipeline(sym)
    yield pipe, sym
    await pipe.stop()
    await pipe.delete_consumers(bus)
    pipe.drop_tables()


async def test_published_ticks_land_in_questdb_with_exact_decimals_bars_and_counters(bus: Bus) -> None:
    """Through the running sink-ticks service: trades, quotes, ohlcv_1m and GetStats."""
    sym, t0 = symbol(), (time.time_ns() // 60_000_000_000) * 60_000_000_000
    trades = [trade_event(sym, i, t0, price=p) for i, p in enumerate(["101.25", "101.5", "100.75", "101"], start=1)]
    quotes = [quote_event(sym, i, t0) for i in range(1, 4)]
    await publish(bus, [*trades, *quotes])

    await wait_for(lambda: scalar(f"SELECT count() FROM trades WHERE symbol = '{sym}'") == 4)
    await wait_for(lambda: scalar(f"SELECT count() FROM quotes WHERE symbol = '{sym}'") == 3)
    row = sql(f"SELECT price, quantity, trade_id, venue, aggressor_side FROM trades WHERE symbol = '{sym}' LIMIT 1")
    assert row["dataset"] == [["101.250000000000000000", "0.001000000000000000", "T1", "prism", "buy"]]
    quote = sql(f"SELECT bid_price, ask_size FROM quotes WHERE symbol = '{sym}' LIMIT 1")["dataset"]
    assert quote == [["100.100000000000000000", None]]  # an absent side stays NULL

    await wait_for(lambda: scalar(f"SELECT trades FROM ohlcv_1m WHERE symbol = '{sym}'") == 4)
    bar = sql(f"SELECT open, high, low, close, volume FROM ohlcv_1m WHERE symbol = '{sym}'")["dataset"]
    assert isinstance(bar, list)
    assert [v.rstrip("0") for v in bar[0]] == ["101.25", "101.5", "100.75", "101.", "0.004"]

    port = load_ports().service("sink_ticks")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = sink_ticks_pb2_grpc.SinkTicksServiceStub(channel)
        stats = await stub.GetStats(sink_ticks_pb2.GetStatsRequest(tables=["trades"]), timeout=5)
        status = await stub.GetIngestStatus(sink_ticks_pb2.GetIngestStatusRequest(), timeout=5)
    assert [t.table for t in stats.tables] == ["trades"]
    assert stats.tables[0].rows_written >= 4 and stats.tables[0].batches_written >= 1
    assert {c.filter_subject for c in status.consumers} == {"md.trade.>", "md.quote.>"}
    assert all(c.state == sink_ticks_pb2.CONSUMER_STATE_RUNNING for c in status.consumers)
    assert status.healthy


async def test_replaying_the_same_jetstream_range_twice_leaves_row_counts_unchanged(
    bus: Bus, pipeline: tuple[Pipeline, str]
) -> None:
    pipe, sym = pipeline
    t0 = time.time_ns()
    events = [trade_event(sym, i, t0) for i in range(1, 301)]
    await publish(bus, events)
    sink = await pipe.start()
    await wait_for(lambda: pipe.count() == 300)

    # Replay 1: the durable consumer deleted and re-created, so the whole range is delivered again.
    await pipe.stop()
    await pipe.delete_consumers(bus)
    sink = await pipe.start()
    await wait_for(lambda: sink.ingest.stats().rows_written >= 300)
    # Replay 2: the same trades published again under new message ids (past JetStream's dedup).
    await publish(bus, events, msg_id_suffix=":again")
    await wait_for(lambda: sink.ingest.stats().rows_written >= 600)
    await asyncio.sleep(1.0)  # let QuestDB apply the WAL
    assert pipe.count() == 300
    assert pipe.count(distinct=True) == 300


async def test_questdb_restart_during_ingestion_loses_and_duplicates_no_acknowledged_tick(
    bus: Bus, pipeline: tuple[Pipeline, str]
) -> None:
    pipe, sym = pipeline
    sink = await pipe.start()
    t0 = time.time_ns()
    total = 600

    async def publish_slowly() -> None:
        for i in range(1, total + 1):
            await publish_retrying(bus, trade_event(sym, i, t0))
            if i % 50 == 0:
                await asyncio.sleep(0.05)

    publisher = asyncio.create_task(publish_slowly())
    await wait_for(lambda: pipe.count() > 50)
    await asyncio.to_thread(control.restart, "questdb")
    await publisher
    await wait_for(lambda: pipe.count() == total, limit_s=60)
    await asyncio.sleep(1.0)
    assert pipe.count() == total
    assert pipe.count(distinct=True) == total
    assert sink.ingest.stats().rows_written >= total
