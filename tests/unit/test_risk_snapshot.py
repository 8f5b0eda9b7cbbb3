"""Risk snapshots: positions and tracked orders survive encode -> decode whole (open orders and leaves derived
again), and a snapshot is used only when it matches both FILLS and ORDERS."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.risk.adapters import snapshot
from services.risk.adapters.snapshot import ExposureSnapshots, decode, encode
from services.risk.domain.model import Side
from services.risk.domain.state import ExposureBook
from services.runtime.snapshots import StreamPosition
from tests.support.snapshots import MemorySnapshotStore, streams

D = Decimal
CREATED = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
CREATED_NS = int(CREATED.timestamp() * 1e9)
FEEDS = [("fills", "FILLS", "fills.>"), ("orders", "ORDERS", "orders.>")]
POSITIONS = {
    "fills": StreamPosition("FILLS", CREATED_NS, "fills.>", 7),
    "orders": StreamPosition("ORDERS", CREATED_NS, "orders.>", 42),
}


def sample_book() -> ExposureBook:
    book = ExposureBook()
    book.apply_fill("F1", "acct-1", "BTCUSDT", Side.BUY, D("1.5"))
    book.apply_fill("F2", "acct-1", "BTCUSDT", Side.SELL, D("0.5"))
    book.apply_fill("F3", "acct-2", "ETHUSDT", Side.SELL, D("3"))
    book.apply_order("O1", "acct-1", "BTCUSDT", Side.BUY, D("2"), True, 1)
    book.apply_order("O1", "acct-1", "BTCUSDT", Side.BUY, D("1.25"), True, 3, D("0.75"))
    book.apply_order("O2", "acct-1", "BTCUSDT", Side.SELL, D("4"), True, 2)
    book.apply_order("O3", "acct-2", "ETHUSDT", Side.SELL, D("0"), False, 5, D("3"))
    return book


def test_positions_and_tracked_orders_survive_encode_and_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshot, "_CHUNK", 2)  # several frames of each kind
    book = sample_book()
    decoded = decode(encode(book, POSITIONS, now_ns=99))
    assert decoded.positions == POSITIONS
    restored = ExposureBook()
    restored.load(decoded.net_positions, decoded.fill_ids, decoded.orders)
    assert restored.contents()[0] == book.contents()[0] and set(restored.contents()[1]) == {"F1", "F2", "F3"}
    assert restored.contents()[2] == book.contents()[2]
    for account, symbol in (("acct-1", "BTCUSDT"), ("acct-2", "ETHUSDT")):
        assert restored.open_exposure(account, symbol, "O1") == book.open_exposure(account, symbol, "O1")
    assert restored.open_orders("acct-1") == book.open_orders("acct-1")
    assert not restored.apply_fill("F2", "acct-1", "BTCUSDT", Side.SELL, D("0.5"))  # still counted once
    assert not restored.apply_order("O1", "acct-1", "BTCUSDT", Side.BUY, D("2"), True, 2)  # an older version


def test_a_snapshot_loads_into_an_empty_book_only() -> None:
    decoded = decode(encode(sample_book(), POSITIONS, 0))
    with pytest.raises(ValueError, match="empty book"):
        sample_book().load(decoded.net_positions, decoded.fill_ids, decoded.orders)


async def test_a_matching_snapshot_is_loaded_and_gives_each_feed_its_position() -> None:
    book = ExposureBook()
    store = MemorySnapshotStore(encode(sample_book(), POSITIONS, 0))
    assert await ExposureSnapshots(streams(CREATED, 50), store, FEEDS).restore(book) == {"fills": 7, "orders": 42}
    assert book.contents()[2] == sample_book().contents()[2]


@pytest.mark.parametrize(
    ("created", "last_seq", "feeds"),
    [
        (datetime(2026, 11, 26, 9, 0, tzinfo=UTC), 50, FEEDS),  # the streams were deleted and created again
        (CREATED, 41, FEEDS),  # ORDERS ends before the snapshot's position
        (CREATED, 50, [FEEDS[0], ("orders", "ORDERS", "orders.acct-1.>")]),  # another filter
        (CREATED, 50, [*FEEDS, ("pnl", "PNL", "pnl.>")]),  # a feed the snapshot does not cover
    ],
    ids=["recreated-streams", "sequence-beyond-the-stream", "other-filter", "other-feeds"],
)
async def test_a_snapshot_that_does_not_match_the_streams_is_ignored(
    created: datetime, last_seq: int, feeds: list[tuple[str, str, str]]
) -> None:
    book = ExposureBook()
    store = MemorySnapshotStore(encode(sample_book(), POSITIONS, 0))
    assert await ExposureSnapshots(streams(created, last_seq), store, feeds).restore(book) == {}
    assert book.tracked_orders() == 0


async def test_an_unreadable_or_unwritable_snapshot_is_logged_not_raised() -> None:
    book = ExposureBook()
    assert await ExposureSnapshots(streams(CREATED, 50), MemorySnapshotStore(b"\x00\x00"), FEEDS).restore(book) == {}
    failing = ExposureSnapshots(streams(CREATED, 50), MemorySnapshotStore(fail_saves=True), FEEDS)
    assert not await failing.save(sample_book(), {"fills": 7, "orders": 42})


async def test_saving_writes_the_book_at_each_feeds_position() -> None:
    store = MemorySnapshotStore()
    assert await ExposureSnapshots(streams(CREATED, 50), store, FEEDS).save(sample_book(), {"fills": 7, "orders": 42})
    assert store.data is not None and decode(store.data).positions == POSITIONS
