"""The local book and Binance's depth-synchronisation procedure: buffering, stale drops, bridging, gaps."""

from __future__ import annotations

from decimal import Decimal

from services.feeds.binance.book import DepthSync, OrderBook, Outcome, SyncState
from services.feeds.binance.protocol import DepthSnapshot, DepthUpdate, Level


def _lv(*pairs: tuple[str, str]) -> tuple[Level, ...]:
    return tuple((Decimal(p), Decimal(q)) for p, q in pairs)


def update(first: int, final: int, bids: tuple[Level, ...] = (), asks: tuple[Level, ...] = ()) -> DepthUpdate:
    return DepthUpdate("BTCUSDT", 0, first, final, bids, asks)


def snapshot(last_update_id: int) -> DepthSnapshot:
    return DepthSnapshot(
        "BTCUSDT",
        last_update_id,
        bids=_lv(("100.00", "1"), ("99.50", "2")),
        asks=_lv(("100.50", "3"), ("101.00", "4")),
    )


def test_events_are_buffered_until_a_snapshot_arrives() -> None:
    sync = DepthSync("BTCUSDT")
    assert sync.needs_snapshot
    assert sync.on_update(update(1, 3)) is Outcome.BUFFERED
    assert sync.book is None and sync.buffered == 1


def test_buffered_events_at_or_before_the_snapshot_are_dropped_and_the_bridging_event_applies() -> None:
    sync = DepthSync("BTCUSDT")
    sync.on_update(update(1, 3, bids=_lv(("1.00", "9"))))
    sync.on_update(update(4, 6, bids=_lv(("2.00", "9"))))
    sync.on_update(update(7, 9, bids=_lv(("100.00", "5"))))  # bridges lastUpdateId 7: U=7 <= 8 <= u=9
    assert sync.on_snapshot(snapshot(7)) is Outcome.SNAPSHOT_APPLIED
    assert sync.synced and sync.book is not None
    assert sync.book.last_update_id == 9
    assert sync.book.bids == {Decimal("100"): Decimal("5"), Decimal("99.5"): Decimal("2")}
    assert sync.counters.dropped_stale == 2


def test_after_a_snapshot_stale_events_are_dropped_and_the_first_event_must_bridge() -> None:
    sync = DepthSync("BTCUSDT")
    sync.on_snapshot(snapshot(10))
    assert sync.state is SyncState.AWAITING_BRIDGE
    assert sync.on_update(update(5, 10)) is Outcome.DROPPED_STALE
    assert sync.on_update(update(9, 12, asks=_lv(("100.50", "7")))) is Outcome.APPLIED
    assert sync.synced and sync.book is not None and sync.book.asks[Decimal("100.5")] == Decimal("7")


def test_a_first_event_past_the_snapshot_is_a_gap_that_asks_for_a_new_snapshot() -> None:
    sync = DepthSync("BTCUSDT")
    sync.on_snapshot(snapshot(10))
    assert sync.on_update(update(12, 14)) is Outcome.GAP
    assert sync.needs_snapshot and sync.book is None and sync.buffered == 1


def test_live_events_must_continue_the_sequence_exactly() -> None:
    sync = DepthSync("BTCUSDT")
    sync.on_snapshot(snapshot(10))
    assert sync.on_update(update(11, 13)) is Outcome.APPLIED
    assert sync.on_update(update(14, 14)) is Outcome.APPLIED
    assert sync.on_update(update(12, 14)) is Outcome.DROPPED_STALE  # a duplicate changes nothing
    assert sync.on_update(update(14, 16)) is Outcome.GAP  # overlaps instead of continuing at 15
    assert sync.counters.gaps == 1


def test_a_sequence_gap_discards_the_book_and_resyncs_from_the_next_snapshot() -> None:
    sync = DepthSync("BTCUSDT")
    sync.on_snapshot(snapshot(10))
    sync.on_update(update(11, 13))
    assert sync.on_update(update(17, 19, bids=_lv(("100.00", "8")))) is Outcome.GAP  # 14..16 missing
    assert sync.on_update(update(20, 22)) is Outcome.BUFFERED
    assert sync.on_snapshot(snapshot(18)) is Outcome.SNAPSHOT_APPLIED
    assert sync.synced and sync.book is not None
    # 17..19 bridged snapshot 18, then 20..22 continued.
    assert sync.book.last_update_id == 22 and sync.book.bids[Decimal("100")] == Decimal("8")


def test_a_snapshot_older_than_the_buffer_is_refused() -> None:
    sync = DepthSync("BTCUSDT")
    sync.on_update(update(20, 22))
    assert sync.on_snapshot(snapshot(15)) is Outcome.SNAPSHOT_TOO_OLD
    assert sync.needs_snapshot and sync.buffered == 1
    assert sync.on_snapshot(snapshot(21)) is Outcome.SNAPSHOT_APPLIED and sync.synced


def test_a_gap_inside_the_buffer_keeps_the_later_events_for_the_next_snapshot() -> None:
    sync = DepthSync("BTCUSDT")
    for first, final in [(8, 10), (11, 12), (20, 21), (22, 23)]:
        sync.on_update(update(first, final))
    assert sync.on_snapshot(snapshot(9)) is Outcome.SNAPSHOT_APPLIED
    assert sync.needs_snapshot and sync.buffered == 2  # 20..21 (the gap) and 22..23
    assert sync.on_snapshot(snapshot(20)) is Outcome.SNAPSHOT_APPLIED
    assert sync.synced and sync.book is not None and sync.book.last_update_id == 23


def test_a_snapshot_nobody_asked_for_is_ignored() -> None:
    sync = DepthSync("BTCUSDT")
    sync.on_snapshot(snapshot(10))
    assert sync.on_snapshot(snapshot(50)) is Outcome.SNAPSHOT_IGNORED
    assert sync.book is not None and sync.book.last_update_id == 10


def test_reset_forgets_book_and_buffer() -> None:
    sync = DepthSync("BTCUSDT")
    sync.on_snapshot(snapshot(10))
    sync.reset()
    assert sync.needs_snapshot and sync.book is None and sync.buffered == 0


def test_a_full_buffer_drops_its_oldest_event() -> None:
    sync = DepthSync("BTCUSDT", max_buffer=2)
    for i in range(3):
        sync.on_update(update(i * 2 + 1, i * 2 + 2))
    assert sync.buffered == 2 and sync.counters.buffer_overflows == 1
    assert sync.on_snapshot(snapshot(1)) is Outcome.SNAPSHOT_TOO_OLD


def test_quantity_zero_removes_a_level_and_removing_an_absent_level_is_harmless() -> None:
    book = OrderBook.from_snapshot(snapshot(10))
    book.apply(update(11, 11, bids=_lv(("100.00", "0"), ("42.00", "0.00000000")), asks=_lv(("102.00", "1"))))
    assert book.bids == {Decimal("99.5"): Decimal("2")}
    assert book.best_bid() == (Decimal("99.5"), Decimal("2"))
    assert book.best_ask() == (Decimal("100.5"), Decimal("3"))
    assert Decimal("102") in book.asks


def test_price_levels_with_different_trailing_zeros_are_the_same_level() -> None:
    book = OrderBook.from_snapshot(snapshot(10))
    book.apply(update(11, 11, bids=_lv(("100.00000000", "1.50000000"))))
    assert book.to_dict()["bids"] == [["100", "1.5"], ["99.5", "2"]]
    assert book.to_dict()["asks"] == [["100.5", "3"], ["101", "4"]]
