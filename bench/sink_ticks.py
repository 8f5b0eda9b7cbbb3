"""sink-ticks ingestion rate next to the QuestDB client's own best case, same rows, same run.

- ``sink-ticks``: N canonical trades are published to a JetStream stream of the bench's own (untimed, so the running
  sink-ticks service does not see them) as MD messages: MarketDataBatch protobufs of E events each (the normalizer
  groups a subject's events, up to 256 a message; draining a backlog it fills them), then an in-process sink built
  by the service's composition root with its settings (durable batch consumer, fetches of at most batch_size
  messages and fetch_max_bytes bytes, linger 50 ms instead of 2 s -> decode -> ILP over HTTP, flush per fetch ->
  ack) drains them into a fresh table with the production schema (DECIMAL, DEDUP UPSERT KEYS, WAL, ohlcv_1m-style
  materialized view). Timed from start (consumer creation included) until the sink wrote every row and QuestDB
  counts them all. The trades' prices sit on a 500-tick grid, their sizes are all but unique.
- ``--also-events-per-message``: the sink again with messages of other sizes, each on its own row (default 1: one
  event a message, the contract before MarketDataBatch). The first sink row (``--events-per-message``, default 100)
  is the one compared in the JSON's sink_vs_client_best.
- ``questdb client, batch=B``: the same rows written straight with ``questdb.Sender`` (HTTP), flushing every B rows
  (default 10000), into another fresh table with the same schema.
- ``questdb client, batch=50000``: the same with large flushes (the client's best case).

Prints a table and writes JSON to bench/results/sink_ticks.json.

    .venv/bin/python -m bench.sink_ticks [--rows 50000] [--batch 10000] [--events-per-message 100]
        [--also-events-per-message 1]
"""

from __future__ import annotations

import asyncio
import json
import platform
import time
import uuid
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path

import typer
from questdb import Sender, TimestampNanos
from rich.console import Console
from rich.table import Table
from trade.normalizer.v1 import events_pb2
from trade.type.v1 import decimal_pb2, market_data_pb2, order_pb2, venue_pb2

from services.runtime.bus import Bus, StreamSpec
from services.sink_ticks.adapters.codec import decode_batch
from services.sink_ticks.adapters.schema import QuestDbSql, TableNames
from services.sink_ticks.bootstrap import SinkTicks, compose
from services.sink_ticks.domain.model import TradeRow
from services.sink_ticks.settings import SinkTicksSettings

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Result:
    name: str
    rows: int
    seconds: float
    rows_per_s: float
    batch: int  # sink: messages a fetch at most (batch_size); questdb client: rows a flush
    flushes: int
    events_per_message: int | None = None  # sink rows only


def events(symbol: str, rows: int) -> list[events_pb2.MarketDataEvent]:
    t0 = time.time_ns() - rows * 1_000
    out = []
    for i in range(1, rows + 1):
        price = Decimal("64000.00") + Decimal(i % 500) / 100
        out.append(
            events_pb2.MarketDataEvent(
                event_id=f"trade:{symbol}:{i}",
                publish_time_ns=time.time_ns(),
                trade=market_data_pb2.Trade(
                    symbol=symbol,
                    venue=venue_pb2.VENUE_PRISM,
                    trade_id=str(i),
                    price=decimal_pb2.Decimal(value=str(price)),
                    # sizes all but unique (the sink caches decimal texts: no help from repeats here)
                    quantity=decimal_pb2.Decimal(value=str(Decimal((i * 7919) % 99991 + 1) / 100000)),
                    aggressor_side=order_pb2.SIDE_BUY if i % 2 else order_pb2.SIDE_SELL,
                    sequence=i,
                    event_time_ns=t0 + i * 1_000,
                    receive_time_ns=t0 + i * 1_000 + 250,
                ),
            )
        )
    return out


async def count(sql: QuestDbSql, table: str) -> int:
    body = await sql.execute(f"SELECT count() FROM {table}")
    dataset = body["dataset"]
    assert isinstance(dataset, list)
    return int(dataset[0][0])


async def wait_count(sql: QuestDbSql, table: str, rows: int, limit_s: float = 300) -> None:
    deadline = time.monotonic() + limit_s
    while await count(sql, table) < rows:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{table} did not reach {rows} rows")
        await asyncio.sleep(0.05)


async def wait_written(sink: SinkTicks, rows: int, limit_s: float = 300) -> None:
    deadline = time.monotonic() + limit_s
    while sink.ingest.stats().rows_written < rows:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the sink did not write {rows} rows")
        await asyncio.sleep(0.005)


def names(tag: str, kind: str) -> TableNames:
    return TableNames(f"bench_{kind}_trades_{tag}", f"bench_{kind}_quotes_{tag}", f"bench_{kind}_ohlcv_{tag}")


async def drop(sql: QuestDbSql, tables: TableNames) -> None:
    for stmt in (
        f"DROP MATERIALIZED VIEW IF EXISTS {tables.bars_1m}",
        f"DROP TABLE IF EXISTS {tables.trades}",
        f"DROP TABLE IF EXISTS {tables.quotes}",
    ):
        await sql.execute(stmt)


def md_messages(evts: list[events_pb2.MarketDataEvent], per_message: int) -> list[tuple[bytes, str]]:
    """(MarketDataBatch bytes, Nats-Msg-Id) per message of up to per_message events, as the normalizer publishes."""
    out = []
    for start in range(0, len(evts), per_message):
        part = evts[start : start + per_message]
        out.append((events_pb2.MarketDataBatch(events=part).SerializeToString(), f"{part[0].event_id}+{len(part)}"))
    return out


async def bench_sink(settings: SinkTicksSettings, evts: list[events_pb2.MarketDataEvent], per_message: int) -> Result:
    tag = uuid.uuid4().hex[:8]
    stream = StreamSpec(name=f"BENCH_SINK_{tag.upper()}", subjects=(f"bench.{tag}.md.>",), duplicate_window_s=60)
    tables = names(tag, "sink")
    sql = QuestDbSql(settings.questdb_http_url)
    bus = Bus(settings.nats_url, "bench-sink-ticks-publisher")
    await bus.connect()
    await bus.ensure_streams([stream])
    try:
        subject = f"bench.{tag}.md.trade.{evts[0].trade.symbol}"
        messages = md_messages(evts, per_message)
        for start in range(0, len(messages), 1000):
            chunk = messages[start : start + 1000]
            await asyncio.gather(*(bus.publish(subject, data, msg_id) for data, msg_id in chunk))
        sink_settings = settings.model_copy(
            update={
                "stream": stream.name,
                "trade_subject": f"bench.{tag}.md.trade.>",
                "quote_subject": f"bench.{tag}.md.quote.>",
                "trades_table": tables.trades,
                "quotes_table": tables.quotes,
                "bars_view": tables.bars_1m,
                "durable_prefix": f"bench-sink-{tag}",
                # A drain's fetches end full (batch_size or fetch_max_bytes) or within 50 ms; the service's linger
                # (2 s, to gather live ticks into fewer commits) would hold back the last, partial one for 2 s.
                "linger_s": 0.05,
            }
        )
        sink = compose(sink_settings)
        await QuestDbSql(settings.questdb_http_url).ensure_schema(tables)
        started = time.perf_counter()
        await sink.start(ensure_md_stream=False)
        # The sink's own counter first (cheap, in-process), then QuestDB: polling QuestDB over HTTP all along would
        # take event-loop time from the sink under test (the client rows are counted only after their last flush).
        await wait_written(sink, len(evts))
        await wait_count(sql, tables.trades, len(evts))
        seconds = time.perf_counter() - started
        flushes = sink.ingest.stats().batches_written
        await sink.stop()
        name = f"sink-ticks, {per_message} events a message (NATS -> decode -> ILP -> ack)"
        return Result(name, len(evts), seconds, len(evts) / seconds, settings.batch_size, flushes, per_message)
    finally:
        await bus.js.delete_stream(stream.name)
        await bus.close()
        await drop(sql, tables)


def write_direct(conf: str, table: str, rows: list[TradeRow], batch: int) -> None:
    with Sender.from_conf(conf) as sender:
        for start in range(0, len(rows), batch):
            buf = sender.new_buffer()
            for t in rows[start : start + batch]:
                buf.row(
                    table,
                    symbols={"symbol": t.symbol, "venue": t.venue, "aggressor_side": t.aggressor_side},
                    columns={
                        "trade_id": t.trade_id,
                        "sequence": t.sequence,
                        "price": t.price,
                        "quantity": t.quantity,
                        "receive_ts": TimestampNanos(t.receive_time_ns),
                        "publish_ts": TimestampNanos(t.publish_time_ns),
                    },
                    at=TimestampNanos(t.ts_ns),
                )
            sender.flush(buf)


async def bench_direct(settings: SinkTicksSettings, rows: list[TradeRow], batch: int) -> Result:
    tag = uuid.uuid4().hex[:8]
    tables = names(tag, "direct")
    sql = QuestDbSql(settings.questdb_http_url)
    await sql.ensure_schema(tables)
    try:
        started = time.perf_counter()
        await asyncio.to_thread(write_direct, settings.ilp_conf(), tables.trades, rows, batch)
        await wait_count(sql, tables.trades, len(rows))
        seconds = time.perf_counter() - started
        flushes = -(-len(rows) // batch)
        name = f"questdb client direct, flush every {batch}"
        return Result(name, len(rows), seconds, len(rows) / seconds, batch, flushes)
    finally:
        await drop(sql, tables)


async def run(rows: int, batch: int, per_message: int, also_per_message: list[int]) -> list[Result]:
    settings = SinkTicksSettings()
    symbol = f"BENCH{uuid.uuid4().hex[:6].upper()}USDT"
    evts = events(symbol, rows)
    decoded = decode_batch(data for data, _ in md_messages(evts, per_message)).trades
    results = [await bench_direct(settings, decoded, 50_000), await bench_direct(settings, decoded, batch)]
    for sink_per_message in (per_message, *also_per_message):
        results.append(await bench_sink(settings, evts, sink_per_message))
    return results


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main(
    rows: int = typer.Option(50_000, help="trades per measurement"),
    batch: int = typer.Option(10_000, help="rows per ILP flush of the questdb client's second row"),
    events_per_message: int = typer.Option(100, help="events per MD message (MarketDataBatch) of the first sink row"),
    also_events_per_message: str = typer.Option(
        "1", help="the sink again with these events per message, comma-separated (a row each)"
    ),
) -> None:
    settings = SinkTicksSettings()
    results = asyncio.run(run(rows, batch, events_per_message, _ints(also_events_per_message)))
    best = max(r.rows_per_s for r in results[:2])
    table = Table(title=f"sink-ticks ingestion, {rows} trades (QuestDB DECIMAL columns, DEDUP, WAL)")
    for col in ("path", "events/msg", "rows", "flushes", "seconds", "rows/s", "vs client best"):
        table.add_column(col, justify="left" if col == "path" else "right")
    for r in results:
        table.add_row(
            r.name,
            "-" if r.events_per_message is None else str(r.events_per_message),
            str(r.rows),
            str(r.flushes),
            f"{r.seconds:.2f}",
            f"{r.rows_per_s:,.0f}",
            f"{r.rows_per_s / best:.0%}",
        )
    Console().print(table)
    RESULTS.mkdir(exist_ok=True)
    out = {
        "rows": rows,
        "batch": batch,
        "events_per_message": events_per_message,
        "sink_batch_size_messages": settings.batch_size,
        "sink_fetch_max_bytes": settings.fetch_max_bytes,
        "sink_max_in_flight": settings.max_in_flight,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "results": [asdict(r) for r in results],
        "sink_vs_client_best": results[2].rows_per_s / best,
    }
    (RESULTS / "sink_ticks.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    typer.run(main)
