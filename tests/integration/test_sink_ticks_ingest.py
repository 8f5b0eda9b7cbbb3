"""sink-ticks against the real NATS and QuestDB: every event of every MD message (several per message) lands exactly
once, bars follow, a malformed message is skipped, replays and a QuestDB restart mid-ingestion neither lose nor
duplicate an acknowledged tick."""

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
from services.runtime.interceptors import ServerInterceptor
from services.runtime.streams import MARKET_DATA
from services.sink_ticks.bootstrap import SinkTicks, compose
from services.sink_ticks.servicer import SinkTicksServicer
from services.sink_ticks.settings import SinkTicksSettings
from tests.support.marketdata import md_message

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


def messages(
    events: list[events_pb2.MarketDataEvent], per_message: int
) -> list[tuple[str, list[events_pb2.MarketDataEvent]]]:
    """The events grouped like the normalizer does: per subject, in order, at most per_message in one message."""
    by_subject: dict[str, list[events_pb2.MarketDataEvent]] = {}
    for e in events:
        by_subject.setdefault(_subject(e), []).append(e)
    return [
        (subject, group[i : i + per_message])
        for subject, group in by_subject.items()
        for i in range(0, len(group), per_message)
    ]


async def publish(
    bus: Bus, events: list[events_pb2.MarketDataEvent], per_message: int = 25, msg_id_suffix: str = ""
) -> None:
    await asyncio.gather(
        *(
            bus.publish(subject, md_message(*group), f"{group[0].event_id}+{len(group)}{msg_id_suffix}")
            for subject, group in messages(events, per_message)
        )
    )


async def publish_retrying(bus: Bus, events: list[events_pb2.MarketDataEvent]) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            msg_id = f"{events[0].event_id}+{len(events)}"
            await bus.publish(_subject(events[0]), md_message(*events), msg_id, timeout_s=2)
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


async def test_every_event_of_multi_event_messages_lands_with_exact_decimals_bars_and_counters(
    bus: Bus, pipeline: tuple[Pipeline, str]
) -> None:
    """Trades and quotes several to a message, a malformed message among them: rows, the bars view and GetStats."""
    pipe, sym = pipeline
    t0 = (time.time_ns() // 60_000_000_000) * 60_000_000_000
    trades = [trade_event(sym, i, t0, price=p) for i, p in enumerate(["101.25", "101.5", "100.75", "101"], start=1)]
    quotes = [quote_event(sym, i, t0) for i in range(1, 4)]
    await bus.publish(f"md.trade.{sym}", b"\xff\xff not protobuf", f"garbage:{sym}")
    await publish(bus, [*trades, *quotes], per_message=3)  # trades in messages of 3 and 1, quotes in one of 3
    sink = await pipe.start()
    s = pipe.settings

    await wait_for(lambda: scalar(f"SELECT count() FROM {s.trades_table}") == 4)
    await wait_for(lambda: scalar(f"SELECT count() FROM {s.quotes_table}") == 3)
    rows = sql(f"SELECT trade_id, price, quantity, venue, aggressor_side FROM {s.trades_table} ORDER BY sequence")
    assert isinstance(rows["dataset"], list)
    assert [r[0] for r in rows["dataset"]] == ["T1", "T2", "T3", "T4"]
    assert rows["dataset"][0] == ["T1", "101.250000000000000000", "0.001000000000000000", "prism", "buy"]
    quote = sql(f"SELECT sequence, bid_price, ask_size FROM {s.quotes_table} ORDER BY sequence")["dataset"]
    assert quote == [[i, "100.100000000000000000", None] for i in range(1, 4)]  # an absent side stays NULL

    await wait_for(lambda: scalar(f"SELECT trades FROM {s.bars_view} WHERE symbol = '{sym}'") == 4)
    bar = sql(f"SELECT open, high, low, close, volume FROM {s.bars_view} WHERE symbol = '{sym}'")["dataset"]
    assert isinstance(bar, list)
    assert [v.rstrip("0") for v in bar[0]] == ["101.25", "101.5", "100.75", "101.", "0.004"]

    assert sink.ingest.stats().malformed == 1
    server = grpc.aio.server(interceptors=[ServerInterceptor()])
    sink_ticks_pb2_grpc.add_SinkTicksServiceServicer_to_server(SinkTicksServicer(sink.ingest, sink.source), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = sink_ticks_pb2_grpc.SinkTicksServiceStub(channel)
            stats = await stub.GetStats(sink_ticks_pb2.GetStatsRequest(tables=[s.trades_table]), timeout=5)
            status = await stub.GetIngestStatus(sink_ticks_pb2.GetIngestStatusRequest(), timeout=5)
    finally:
        await server.stop(0)
    assert [(t.table, t.rows_written) for t in stats.tables] == [(s.trades_table, 4)]
    assert stats.tables[0].batches_written >= 1
    assert {c.filter_subject for c in status.consumers} == {f"md.trade.{sym}", f"md.quote.{sym}"}
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
    await publish(bus, events, per_message=7, msg_id_suffix=":again")  # other message boundaries too
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
        for i in range(1, total + 1, 3):  # three trades a message
            await publish_retrying(bus, [trade_event(sym, seq, t0) for seq in range(i, i + 3)])
            if i % 15 == 1:
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
