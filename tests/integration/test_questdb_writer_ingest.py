"""questdb-writer against the real NATS and QuestDB: fills, order events and PnL snapshots of a test-unique
account land in test-unique tables exactly once, even when the whole range is replayed and re-published."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from trade.oms.v1 import events_pb2 as oms_events_pb2
from trade.pnl.v1 import events_pb2 as pnl_events_pb2
from trade.questdb_writer.v1 import questdb_writer_pb2
from trade.type.v1 import decimal_pb2, fill_pb2, order_pb2, pnl_pb2

from mesh.ports import load_ports
from services.questdb_writer.bootstrap import QuestdbWriter, compose, feeds
from services.questdb_writer.settings import QuestdbWriterSettings
from services.runtime.bus import Bus, StreamSpec

pytestmark = pytest.mark.usefixtures("mesh")

QUESTDB = f"http://127.0.0.1:{load_ports().infra['questdb_http']}/exec"


def sql(query: str) -> dict[str, object]:
    with urllib.request.urlopen(QUESTDB + "?" + urllib.parse.urlencode({"query": query}), timeout=10) as resp:
        body: dict[str, object] = json.loads(resp.read())
    return body


def scalar(query: str) -> int:
    try:
        dataset = sql(query)["dataset"]
    except urllib.error.HTTPError:
        return -1
    assert isinstance(dataset, list)
    return int(dataset[0][0])


async def wait_for(predicate: Callable[[], bool], limit_s: float = 15.0) -> None:
    deadline = time.monotonic() + limit_s
    while not await asyncio.to_thread(predicate):
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.2)


def D(value: str) -> decimal_pb2.Decimal:
    return decimal_pb2.Decimal(value=value)


def fills(account: str, n: int) -> list[fill_pb2.Fill]:
    t0 = time.time_ns()
    return [
        fill_pb2.Fill(
            fill_id=f"prism:{account}:T{i}", order_id="O1", account_id=account, symbol="BTCUSDT",
            side=order_pb2.SIDE_BUY, price=D(f"100.{i}"), quantity=D("0.001"), fee=D("0.0001"), fee_currency="USDT",
            event_time_ns=t0 + i * 1_000_000,
        )
        for i in range(1, n + 1)
    ]  # fmt: skip


def order_events(account: str) -> list[oms_events_pb2.OrderEvent]:
    t0 = time.time_ns()
    return [
        oms_events_pb2.OrderEvent(
            event_id=f"O-{account}:{v}", account_id=account, symbol="BTCUSDT", order_id=f"O-{account}",
            order_version=v, event_time_ns=t0 + v,
            order=order_pb2.Order(status=order_pb2.ORDER_STATUS_NEW, spec=order_pb2.OrderSpec(quantity=D("1"))),
            accepted=oms_events_pb2.OrderAccepted(risk_check_id="r1") if v == 1 else None,
            acknowledged=oms_events_pb2.OrderAcknowledged(venue_order_id="V1") if v == 2 else None,
        )
        for v in (1, 2)
    ]  # fmt: skip


def snapshot(account: str) -> pnl_events_pb2.PnlSnapshot:
    now = time.time_ns()
    return pnl_events_pb2.PnlSnapshot(
        snapshot_id=f"{account}:{now}:intraday", kind=pnl_events_pb2.PNL_SNAPSHOT_KIND_INTRADAY, account_id=account,
        trading_day="2026-11-26", as_of_time_ns=now, total=pnl_pb2.Pnl(account_id=account, net_pnl=D("-1.5")),
        by_symbol=[pnl_pb2.Pnl(account_id=account, symbol="BTCUSDT", net_pnl=D("-1.5"))],
    )  # fmt: skip


async def publish_all(bus: Bus, prefix: str, account: str, batch: list[fill_pb2.Fill], suffix: str = "") -> None:
    await asyncio.gather(
        *(bus.publish(f"{prefix}.fills.{account}.BTCUSDT", f.SerializeToString(), f.fill_id + suffix) for f in batch)
    )


@pytest.fixture
async def bus() -> AsyncIterator[Bus]:
    bus = Bus(QuestdbWriterSettings().nats_url, "test-questdb-writer")
    await bus.connect()
    yield bus
    await bus.close()


class Harness:
    """A writer on a stream of the test's own: the mesh's OMS, exeq, pnl and risk read every subject of FILLS,
    ORDERS and PNL (and would act on the test's fills and order events)."""

    def __init__(self, account: str) -> None:
        tag = uuid.uuid4().hex[:8]
        self.prefix = f"qwtest.{tag}"
        self.stream = StreamSpec(name=f"QWTEST_{tag.upper()}", subjects=(f"{self.prefix}.>",))
        self.settings = QuestdbWriterSettings(
            fills_table=f"test_fills_{tag}",
            order_events_table=f"test_order_events_{tag}",
            pnl_snapshots_table=f"test_pnl_snapshots_{tag}",
            fills_stream=self.stream.name,
            orders_stream=self.stream.name,
            pnl_stream=self.stream.name,
            fills_subject=f"{self.prefix}.fills.{account}.>",
            orders_subject=f"{self.prefix}.orders.{account}.>",
            pnl_subject=f"{self.prefix}.pnl.{account}",
            durable_prefix=f"test-qw-{tag}",
            linger_s=0.05,
        )
        self.writer: QuestdbWriter | None = None

    async def start(self) -> QuestdbWriter:
        self.writer = compose(self.settings)
        await self.writer.start()
        return self.writer

    async def stop(self) -> None:
        if self.writer is not None:
            await self.writer.stop()
            self.writer = None

    async def delete_consumers(self, bus: Bus) -> None:
        for feed in feeds(self.settings):
            with contextlib.suppress(Exception):
                await bus.js.delete_consumer(feed.spec.stream, feed.spec.durable)

    def drop_tables(self) -> None:
        s = self.settings
        for table in (s.fills_table, s.order_events_table, s.pnl_snapshots_table):
            with contextlib.suppress(Exception):
                sql(f"DROP TABLE IF EXISTS {table}")


@pytest.fixture
async def harness(bus: Bus) -> AsyncIterator[tuple[Harness, str]]:
    account = f"test-qw-{uuid.uuid4().hex[:10]}"
    h = Harness(account)
    await bus.ensure_streams([h.stream])
    yield h, account
    await h.stop()
    with contextlib.suppress(Exception):
        await bus.js.delete_stream(h.stream.name)
    h.drop_tables()


async def test_fills_orders_and_snapshots_land_exactly_once_even_when_the_range_is_replayed(
    bus: Bus, harness: tuple[Harness, str]
) -> None:
    h, account = harness
    s = h.settings
    batch = fills(account, 25)
    await publish_all(bus, h.prefix, account, batch)
    for event in order_events(account):
        await bus.publish(f"{h.prefix}.orders.{account}.BTCUSDT", event.SerializeToString(), event.event_id)
    snap = snapshot(account)
    await bus.publish(f"{h.prefix}.pnl.{account}", snap.SerializeToString(), snap.snapshot_id)

    writer = await h.start()
    await wait_for(lambda: scalar(f"SELECT count() FROM {s.fills_table}") == 25)
    await wait_for(lambda: scalar(f"SELECT count() FROM {s.order_events_table}") == 2)
    test_snapshot_rows = f"SELECT count() FROM {s.pnl_snapshots_table} WHERE snapshot_id = '{snap.snapshot_id}'"
    await wait_for(lambda: scalar(test_snapshot_rows) == 2)
    row = sql(f"SELECT price, fee, side, account_id FROM {s.fills_table} WHERE fill_id = '{batch[0].fill_id}'")
    assert row["dataset"] == [["100.100000000000000000", "0.000100000000000000", "buy", account]]
    kinds = sql(f"SELECT event_type FROM {s.order_events_table} ORDER BY order_version")["dataset"]
    assert kinds == [["accepted"], ["acknowledged"]]

    # The same fills again under new message ids (past JetStream's dedup): skipped by id in memory.
    await publish_all(bus, h.prefix, account, batch, suffix=":again")
    await wait_for(lambda: writer.service.stats(frozenset({s.fills_table}))[0].duplicates_skipped >= 25)

    # Replay: the durable consumers deleted and re-created, a fresh writer rewrites the whole range.
    await h.stop()
    await h.delete_consumers(bus)
    writer = await h.start()
    await wait_for(lambda: writer.service.stats(frozenset({s.fills_table}))[0].rows_written >= 25)
    stats = await writer.servicer().GetStats(questdb_writer_pb2.GetStatsRequest(tables=[s.fills_table]), None)  # type: ignore[arg-type]
    (table,) = stats.tables
    assert (table.table, table.source_stream, table.rows_written, table.duplicates_skipped) == (
        s.fills_table, h.stream.name, 25, 25
    )  # fmt: skip
    assert table.last_stream_sequence > 0 and table.malformed_count == 0
    await asyncio.sleep(1.0)  # let QuestDB apply the WAL of the rewrite
    assert scalar(f"SELECT count() FROM {s.fills_table}") == 25
    assert scalar(f"SELECT count_distinct(fill_id) FROM {s.fills_table}") == 25
    assert scalar(f"SELECT count() FROM {s.order_events_table}") == 2
    assert scalar(test_snapshot_rows) == 2
