"""questdb-writer without servers: protobuf -> rows (exact decimals, enum tokens, stable timestamps, malformed
input counted), and the writer service skipping already-written keys and retrying until QuestDB accepts."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from trade.oms.v1 import events_pb2 as oms_events_pb2
from trade.pnl.v1 import events_pb2 as pnl_events_pb2
from trade.type.v1 import decimal_pb2, fill_pb2, order_pb2, pnl_pb2, venue_pb2

from services.questdb_writer.adapters.codec import decode_batch
from services.questdb_writer.domain.model import Batch, FillRow, Kind, OrderEventRow, PnlRow, Row
from services.questdb_writer.domain.service import RetryPolicy, WriterService


def D(value: str) -> decimal_pb2.Decimal:
    return decimal_pb2.Decimal(value=value)


def fill_bytes(fill_id: str = "prism:T1:O1", price: str = "64123.45", event_ns: int = 1_000) -> bytes:
    return fill_pb2.Fill(
        fill_id=fill_id, order_id="O1", account_id="acct", symbol="BTCUSDT", side=order_pb2.SIDE_SELL,
        price=D(price), quantity=D("0.00012"), fee=D("-0.001"), fee_currency="USDT",
        liquidity=fill_pb2.LIQUIDITY_MAKER, venue=venue_pb2.VENUE_PRISM, event_time_ns=event_ns, receive_time_ns=2_000,
    ).SerializeToString()  # fmt: skip


def test_a_fill_maps_to_a_row_with_exact_decimals_and_tokens() -> None:
    batch = decode_batch(Kind.FILLS, [(fill_bytes(), 7, 9_000)])
    (row,) = batch.rows
    assert isinstance(row, FillRow)
    assert (row.ts_ns, row.fill_id, row.side, row.liquidity, row.venue) == (
        1_000,
        "prism:T1:O1",
        "sell",
        "maker",
        "prism",
    )
    assert (row.price, row.fee, row.receive_time_ns) == (Decimal("64123.45"), Decimal("-0.001"), 2_000)
    assert batch.last_stream_sequence == 7 and batch.malformed == 0


def test_without_event_or_receive_time_the_storage_time_is_the_timestamp() -> None:
    payload = fill_pb2.Fill(fill_id="f", account_id="a", symbol="S", price=D("1"), quantity=D("1")).SerializeToString()
    (row,) = decode_batch(Kind.FILLS, [(payload, 1, 9_000)]).rows
    assert row.ts_ns == 9_000


def test_an_order_event_maps_its_kind_status_spec_and_fill() -> None:
    event = oms_events_pb2.OrderEvent(
        event_id="O1:3", account_id="acct", symbol="ETHUSDT", order_id="O1", client_order_id="c1", order_version=3,
        event_time_ns=5_000,
        order=order_pb2.Order(
            status=order_pb2.ORDER_STATUS_PARTIALLY_FILLED, cum_qty=D("0.5"), leaves_qty=D("0.5"),
            avg_price=D("3000.1"), spec=order_pb2.OrderSpec(side=order_pb2.SIDE_BUY,
            order_type=order_pb2.ORDER_TYPE_LIMIT, quantity=D("1"), limit_price=D("3000.5")),
        ),
        filled=oms_events_pb2.OrderFilled(fill=fill_pb2.Fill(fill_id="F9")),
    )  # fmt: skip
    (row,) = decode_batch(Kind.ORDER_EVENTS, [(event.SerializeToString(), 3, 0)]).rows
    assert isinstance(row, OrderEventRow)
    assert (row.event_type, row.status, row.side, row.order_type) == ("filled", "partially_filled", "buy", "limit")
    assert (row.limit_price, row.stop_price, row.cum_qty, row.fill_id) == (
        Decimal("3000.5"),
        None,
        Decimal("0.5"),
        "F9",
    )
    assert (row.ts_ns, row.order_version, row.key) == (5_000, 3, "O1:3")


def test_a_pnl_snapshot_maps_to_a_total_row_and_one_per_symbol() -> None:
    snap = pnl_events_pb2.PnlSnapshot(
        snapshot_id="acct:100:end_of_day", kind=pnl_events_pb2.PNL_SNAPSHOT_KIND_END_OF_DAY, account_id="acct",
        trading_day="2026-11-25", as_of_time_ns=100,
        total=pnl_pb2.Pnl(account_id="acct", currency="USDT", realized_pnl=D("10"), net_pnl=D("9.5")),
        by_symbol=[pnl_pb2.Pnl(symbol="BTCUSDT", realized_pnl=D("10"), mark_price=D("101"))],
    )  # fmt: skip
    rows = decode_batch(Kind.PNL_SNAPSHOTS, [(snap.SerializeToString(), 1, 0)]).rows
    assert all(isinstance(r, PnlRow) for r in rows)
    total, btc = rows
    assert isinstance(total, PnlRow) and isinstance(btc, PnlRow)
    assert (total.symbol, total.kind, total.net_pnl, total.unrealized_pnl) == ("*", "end_of_day", Decimal("9.5"), None)
    assert (btc.symbol, btc.mark_price, btc.key) == ("BTCUSDT", Decimal("101"), "acct:100:end_of_day/BTCUSDT")


def test_malformed_messages_are_counted_and_skipped() -> None:
    no_id = fill_pb2.Fill(account_id="a", symbol="S", price=D("1"), quantity=D("1")).SerializeToString()
    batch = decode_batch(
        Kind.FILLS,
        [(b"\xff\xff", 1, 0), (fill_bytes(price="1e5"), 2, 0), (fill_bytes(price="0.0000000000000000001"), 3, 0),
         (no_id, 4, 0), (fill_bytes(), 5, 0)],
    )  # fmt: skip
    assert (batch.malformed, len(batch.rows), batch.messages, batch.last_stream_sequence) == (4, 1, 5, 5)


class FlakyWriter:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.written: list[list[Row]] = []

    async def write(self, kind: Kind, rows: Sequence[Row]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("questdb down")
        self.written.append(list(rows))


class Clock:
    def now_ns(self) -> int:
        return 42


async def no_sleep(_: float) -> None:
    return None


def service(writer: FlakyWriter) -> WriterService:
    tables = {Kind.FILLS: ("t_fills", "FILLS"), Kind.ORDER_EVENTS: ("t_orders", "ORDERS")}
    return WriterService(writer, Clock(), no_sleep, tables, remember=2, retry=RetryPolicy(0.0, 0.0))


async def test_a_failed_write_is_retried_until_accepted_and_counted() -> None:
    writer = FlakyWriter(failures=2)
    svc = service(writer)
    batch = decode_batch(Kind.FILLS, [(fill_bytes("a"), 1, 0), (fill_bytes("b"), 2, 0)])
    await svc.ingest(batch)
    (fills, orders) = svc.stats()
    assert len(writer.written) == 1 and len(writer.written[0]) == 2
    assert (fills.rows_written, fills.write_errors, fills.last_stream_sequence, fills.last_write_time_ns) == (
        2,
        2,
        2,
        42,
    )
    assert orders.rows_written == 0 and [t.table for t in svc.stats(frozenset({"t_orders"}))] == ["t_orders"]


async def test_rows_already_written_or_repeated_in_the_batch_are_skipped_as_duplicates() -> None:
    writer = FlakyWriter(failures=0)
    svc = service(writer)
    await svc.ingest(decode_batch(Kind.FILLS, [(fill_bytes("a"), 1, 0), (fill_bytes("a"), 2, 0)]))
    await svc.ingest(decode_batch(Kind.FILLS, [(fill_bytes("a"), 3, 0), (fill_bytes("b"), 4, 0)]))
    await svc.ingest(Batch(Kind.FILLS, malformed=1))
    fills = svc.stats(frozenset({"t_fills"}))[0]
    assert [[r.key for r in rows] for rows in writer.written] == [["a"], ["b"]]
    assert (fills.rows_written, fills.duplicates_skipped, fills.malformed_count) == (2, 2, 1)
    # Only the last `remember` keys are kept: the oldest comes back as a (harmless, deduplicated) rewrite.
    await svc.ingest(decode_batch(Kind.FILLS, [(fill_bytes("c"), 5, 0)]))
    await svc.ingest(decode_batch(Kind.FILLS, [(fill_bytes("a"), 6, 0)]))
    assert [r.key for r in writer.written[-1]] == ["a"]
