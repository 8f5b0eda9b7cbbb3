"""Books built from a snapshot and sequenced deltas: gaps are detected, depth views send only what changed."""

from __future__ import annotations

from decimal import Decimal

from services.marketdata.domain.book import Applied, Book, Delta, Level, Snapshot, diff_side
from services.marketdata.domain.hub import BookHub


def lv(price: str, qty: str) -> Level:
    return Level(Decimal(price), Decimal(qty))


def snap(seq: int) -> Snapshot:
    return Snapshot(seq, (lv("100", "1"), lv("99", "2"), lv("98", "3")), (lv("101", "1"), lv("102", "2")))


def test_deltas_apply_in_sequence_on_top_of_a_snapshot() -> None:
    book = Book("BTCUSDT")
    assert book.apply_delta(Delta(1, 0, (lv("100", "5"),), ())) is Applied.UNSYNCED
    book.apply_snapshot(snap(10))
    assert book.apply_delta(Delta(11, 10, (lv("100", "5"), lv("99", "0")), (lv("100.5", "1"),))) is Applied.APPLIED
    bids, asks = book.view(2)
    assert bids == (lv("100", "5"), lv("98", "3"))
    assert asks == (lv("100.5", "1"), lv("101", "1"))
    assert book.sequence == 11


def test_a_missing_delta_is_a_gap_and_the_book_waits_for_the_next_snapshot() -> None:
    book = Book("BTCUSDT")
    book.apply_snapshot(snap(10))
    assert book.apply_delta(Delta(10, 9, (), ())) is Applied.STALE
    assert book.apply_delta(Delta(13, 12, (lv("100", "9"),), ())) is Applied.GAP
    assert not book.synced and book.gaps == 1
    assert book.apply_delta(Delta(14, 13, (), ())) is Applied.UNSYNCED
    book.apply_snapshot(snap(14))
    assert book.apply_delta(Delta(15, 14, (), ())) is Applied.APPLIED


def test_view_diff_reports_changed_levels_and_levels_leaving_the_view() -> None:
    old = (lv("100", "1"), lv("99", "2"))
    new = (lv("100", "3"), lv("98", "1"))
    assert set(diff_side(old, new)) == {lv("100", "3"), lv("98", "1"), lv("99", "0")}


def test_book_stream_starts_with_a_snapshot_then_deltas_chained_by_previous_sequence() -> None:
    hub = BookHub(queue_capacity=8)
    hub.on_snapshot("BTCUSDT", snap(10))
    sub = hub.subscribe("BTCUSDT", depth=1)
    assert sub.queue.needs_snapshot
    first = hub.take_snapshot(sub)
    assert first is not None and first.sequence == 10 and first.bids == (lv("100", "1"),)
    hub.on_delta("BTCUSDT", Delta(11, 10, (lv("97", "1"),), ()))  # outside depth 1: nothing for this view
    hub.on_delta("BTCUSDT", Delta(12, 11, (lv("100", "4"),), ()))
    (d,) = sub.queue.drain()
    stamped = sub.stamp(d)
    assert (stamped.sequence, stamped.previous_sequence, stamped.bids) == (12, 10, (lv("100", "4"),))


def test_a_resynchronized_source_book_forces_a_fresh_snapshot_on_every_stream() -> None:
    hub = BookHub(queue_capacity=8)
    hub.on_snapshot("BTCUSDT", snap(10))
    sub = hub.subscribe("BTCUSDT", depth=5)
    hub.take_snapshot(sub)
    hub.on_delta("BTCUSDT", Delta(12, 11, (lv("100", "4"),), ()))  # gap upstream
    assert hub.take_snapshot(sub) is None  # no snapshot from a book known to be incomplete
    hub.on_snapshot("BTCUSDT", snap(20))
    assert sub.queue.needs_snapshot
    again = hub.take_snapshot(sub)
    assert again is not None and again.sequence == 20
