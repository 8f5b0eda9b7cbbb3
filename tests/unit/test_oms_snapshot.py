"""OMS snapshots: the book survives encode -> decode whole, and a snapshot is used only when it matches the journal."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from services.oms.adapters import snapshot
from services.oms.adapters.snapshot import JournalSnapshots, decode, encode
from services.oms.domain.book import OrderBook
from services.oms.domain.model import Fill, Order, OrderSpec, OrderType, Side, Status, TimeInForce
from services.runtime.snapshots import StreamPosition
from tests.support.snapshots import MemorySnapshotStore, streams

D = Decimal
SPEC = OrderSpec(Side.BUY, OrderType.LIMIT, D("2"), D("100"), None, TimeInForce.GTC)
CREATED = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
POSITION = StreamPosition("ORDERS", int(CREATED.timestamp() * 1e9), "orders.>", 42)


def order(order_id: str, account: str, **fields: Any) -> Order:
    return replace(
        Order(order_id, f"c-{order_id}", account, "BTCUSDT", SPEC, Status.PENDING_NEW, "PRISM", 10, 20),
        **fields,
    )


def fill(fill_id: str, o: Order, qty: str, price: str) -> Fill:
    return Fill(fill_id, D(price), D(qty), D("0.01"), "USDT", "TAKER", "PRISM", "V1", fill_id, 30, 31, o.order_id)


def sample_book() -> OrderBook:
    book = OrderBook()
    filled = order("O1", "acct-1", status=Status.PENDING_NEW)
    book.put(filled, None)
    for version, (fid, qty, price) in enumerate((("F1", "0.5", "100"), ("F2", "1.5", "104")), start=2):
        f = fill(fid, filled, qty, price)
        filled = replace(
            filled,
            version=version,
            status=Status.PARTIALLY_FILLED if fid == "F1" else Status.FILLED,
            acknowledged=True,
            fill_ids=filled.fill_ids | {fid},
            report_ids=filled.report_ids | {f"rep-{fid}"},
            cum_notional=filled.cum_notional + f.price * f.quantity,
        )
        book.put(filled, f)
    amended = order("O2", "acct-2", venue_order_id="V2", strategy_id="s1", parent_order_id="P1")
    book.put(amended, None)
    new_spec = replace(SPEC, quantity=D("3"), limit_price=D("99.5"))
    book.put(replace(amended, version=2, spec=new_spec, status=Status.NEW, acknowledged=True), None)
    book.put(replace(amended, version=3, spec=new_spec, status=Status.PENDING_REPLACE, pending_spec=SPEC), None)
    book.put(order("O3", "acct-1", status=Status.REJECTED, reason="RISK_MAX_NOTIONAL", reason_message="big"), None)
    book.put(order("O4", "acct-2", status=Status.NEW), fill("F3", order("O4", "acct-2"), "1", "101"))
    return book


def test_a_book_survives_encode_and_decode_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshot, "_CHUNK", 2)  # several frames of orders and of fills
    book = sample_book()
    decoded = decode(encode(book, POSITION, now_ns=99))
    assert decoded.position == POSITION
    restored = OrderBook()
    restored.load(decoded.orders, decoded.fills)
    assert restored.contents() == book.contents()
    o2, submission = next(pair for pair in restored.contents()[0] if pair[0].order_id == "O2")
    assert submission.spec == SPEC != o2.spec and o2.pending_spec == SPEC
    assert [o.order_id for o in restored.open_orders("acct-2")] == ["O2", "O4"]
    assert restored.by_client_order_id("acct-1", "c-O1") == book.get("O1")


def test_a_snapshot_loads_into_an_empty_book_only() -> None:
    decoded = decode(encode(sample_book(), POSITION, now_ns=99))
    with pytest.raises(ValueError, match="empty book"):
        sample_book().load(decoded.orders, decoded.fills)


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00\x00\x00\x09\x08", encode(OrderBook(), POSITION, 0)[:-3]],
    ids=["empty", "truncated-frame", "truncated-header"],
)
def test_a_truncated_snapshot_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode(data)


def test_a_snapshot_of_another_format_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshot, "FORMAT", 2)
    data = encode(sample_book(), POSITION, 0)
    monkeypatch.setattr(snapshot, "FORMAT", 1)
    with pytest.raises(ValueError, match="format 2"):
        decode(data)


async def test_a_matching_snapshot_is_loaded_and_gives_the_position_to_replay_from() -> None:
    book = OrderBook()
    store = MemorySnapshotStore(encode(sample_book(), POSITION, 0))
    assert await JournalSnapshots(streams(CREATED, 50), store, "ORDERS", "orders.>").restore(book) == 42
    assert book.contents() == sample_book().contents()


@pytest.mark.parametrize(
    ("created", "last_seq", "subject_filter"),
    [
        (datetime(2026, 11, 26, 9, 0, tzinfo=UTC), 50, "orders.>"),  # the stream was deleted and created again
        (CREATED, 41, "orders.>"),  # the stream ends before the snapshot's position
        (CREATED, 50, "orders.acct-1.>"),  # another OMS's journal filter
    ],
    ids=["recreated-stream", "sequence-beyond-the-stream", "other-filter"],
)
async def test_a_snapshot_that_does_not_match_the_journal_is_ignored(
    created: datetime, last_seq: int, subject_filter: str
) -> None:
    book = OrderBook()
    store = MemorySnapshotStore(encode(sample_book(), POSITION, 0))
    assert await JournalSnapshots(streams(created, last_seq), store, "ORDERS", subject_filter).restore(book) == 0
    assert len(book) == 0


async def test_an_unreadable_snapshot_means_a_replay_from_the_start() -> None:
    book = OrderBook()
    store = MemorySnapshotStore(b"\x00\x00\x00\x05garbage")
    assert await JournalSnapshots(streams(CREATED, 50), store, "ORDERS", "orders.>").restore(book) == 0
    assert len(book) == 0


async def test_saving_writes_the_book_at_the_given_journal_position() -> None:
    store = MemorySnapshotStore(None)
    snapshots = JournalSnapshots(streams(CREATED, 50), store, "ORDERS", "orders.>", clock=lambda: 7)
    assert await snapshots.save(sample_book(), 42)
    assert store.data is not None and decode(store.data).position == POSITION


async def test_a_snapshot_that_cannot_be_written_is_logged_not_raised() -> None:
    snapshots = JournalSnapshots(streams(CREATED, 50), MemorySnapshotStore(fail_saves=True), "ORDERS", "orders.>")
    assert not await snapshots.save(sample_book(), 42)
