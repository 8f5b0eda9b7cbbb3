"""hot-cache without servers: the sequence guard, books from snapshots and deltas (gaps, stale deltas),
batch-read rules, and the protobuf codec (MD messages of several events)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import pytest
from trade.normalizer.v1 import events_pb2
from trade.type.v1 import decimal_pb2, market_data_pb2, venue_pb2

from services.hot_cache.adapters.codec import decode_batch, encode_book
from services.hot_cache.domain.book import Applied, Book
from services.hot_cache.domain.model import (
    BookDeltaIn,
    BookSnapshotIn,
    BookView,
    CachedValue,
    CacheKind,
    CacheUpdate,
    Level,
    is_newer,
)
from services.hot_cache.domain.service import HotCache
from services.runtime.errors import DomainError, ErrorKind
from tests.support.marketdata import md_message


def lv(price: str, qty: str) -> Level:
    return Level(Decimal(price), Decimal(qty))


def snap(seq: int) -> BookSnapshotIn:
    return BookSnapshotIn(
        "BTCUSDT", "prism", (lv("99", "1"), lv("98", "2")), (lv("101", "1"), lv("102", "2")), seq, 1, 2
    )


def delta(seq: int, prev: int, bids: tuple[Level, ...] = (), asks: tuple[Level, ...] = ()) -> BookDeltaIn:
    return BookDeltaIn("BTCUSDT", "prism", bids, asks, seq, prev, 3, 4)


def test_the_sequence_guard_accepts_only_strictly_newer_values() -> None:
    assert is_newer(None, 0)
    assert is_newer(4, 5)
    assert not is_newer(5, 5)
    assert not is_newer(5, 3)


def test_deltas_update_levels_and_a_zero_quantity_removes_a_level() -> None:
    book = Book("BTCUSDT")
    assert book.apply_delta(delta(1, 0)) is Applied.NOT_SYNCED
    assert book.apply_snapshot(snap(10)) is Applied.APPLIED
    assert book.apply_delta(delta(11, 10, bids=(lv("99", "0"), lv("99.5", "3")), asks=(lv("100.5", "1"),))) is (
        Applied.APPLIED
    )
    view = book.top(2)
    assert [(str(x.price), str(x.quantity)) for x in view.bids] == [("99.5", "3"), ("98", "2")]
    assert [str(x.price) for x in view.asks] == ["100.5", "101"]
    assert view.sequence == 11 and book.top(1).bids == (lv("99.5", "3"),)


def test_a_redelivered_delta_is_ignored_and_a_gap_waits_for_the_next_snapshot() -> None:
    book = Book("BTCUSDT")
    book.apply_snapshot(snap(10))
    book.apply_delta(delta(11, 10, bids=(lv("97", "1"),)))
    assert book.apply_delta(delta(11, 10, bids=(lv("97", "9"),))) is Applied.STALE
    assert book.bids[Decimal("97")].quantity == Decimal("1")
    assert book.apply_delta(delta(13, 12)) is Applied.GAP
    assert book.apply_delta(delta(14, 13)) is Applied.NOT_SYNCED
    assert book.apply_snapshot(snap(9)) is Applied.APPLIED  # out of sync: any snapshot re-synchronizes
    assert book.apply_snapshot(snap(9)) is Applied.STALE


class MemoryStore:
    def __init__(self) -> None:
        self.data: dict[tuple[CacheKind, str], CachedValue] = {}

    async def put_many(self, updates: Sequence[CacheUpdate]) -> int:
        stored = 0
        for u in updates:
            current = self.data.get((u.kind, u.symbol))
            if is_newer(current.sequence if current else None, u.sequence):
                self.data[(u.kind, u.symbol)] = CachedValue(u.kind, u.symbol, u.sequence, u.payload, 1)
                stored += 1
        return stored

    async def get_many(self, keys: Sequence[tuple[CacheKind, str]]) -> list[CachedValue | None]:
        return [self.data.get(k) for k in keys]

    async def symbols(self, kind: CacheKind) -> list[str]:
        return [s for k, s in self.data if k is kind]


def fake_encode(view: BookView) -> bytes:
    return f"book@{view.sequence}:{len(view.bids)}".encode()


async def test_a_batch_keeps_the_newest_value_per_key_and_older_events_change_nothing() -> None:
    store = MemoryStore()
    cache = HotCache(store, fake_encode, book_depth=1)
    quotes = [CacheUpdate(CacheKind.QUOTE, "ETHUSDT", seq, f"q{seq}".encode()) for seq in (3, 5, 4)]
    assert await cache.apply(quotes, [snap(10), delta(11, 10, bids=(lv("99.5", "1"),))]) == 2
    assert store.data[(CacheKind.QUOTE, "ETHUSDT")].payload == b"q5"
    assert store.data[(CacheKind.BOOK, "BTCUSDT")].payload == b"book@11:1"
    assert await cache.apply([CacheUpdate(CacheKind.QUOTE, "ETHUSDT", 2, b"old")]) == 0
    assert store.data[(CacheKind.QUOTE, "ETHUSDT")].payload == b"q5"
    assert cache.counters.stale_or_duplicate == 1


async def test_batch_reads_report_missing_market_keys_and_positions_as_not_available() -> None:
    store = MemoryStore()
    cache = HotCache(store, fake_encode)
    await cache.apply([CacheUpdate(CacheKind.QUOTE, "BTCUSDT", 1, b"q")])
    found, missing, position = await cache.batch_get(
        "ACC-1", [(CacheKind.QUOTE, "BTCUSDT"), (CacheKind.BOOK, "BTCUSDT"), (CacheKind.POSITION, "BTCUSDT")]
    )
    assert found.value is not None and found.value.payload == b"q"
    assert (missing.value, missing.missing_reason) == (None, "DATA_NOT_AVAILABLE")
    assert (position.value, position.missing_reason) == (None, "DATA_NOT_AVAILABLE")
    assert [q.symbol for q in await cache.quotes([])] == ["BTCUSDT"]


@pytest.mark.parametrize(
    ("account", "keys", "field"),
    [
        ("", [(CacheKind.QUOTE, "BTCUSDT")], "account_id"),
        ("ACC-1", [], "keys"),
        ("ACC-1", [(CacheKind.QUOTE, "BTCUSDT")] * 501, "keys"),
        ("ACC-1", [(None, "BTCUSDT")], "keys[0].kind"),
        ("ACC-1", [(CacheKind.BOOK, "")], "keys[0].symbol"),
    ],
)
async def test_invalid_batch_reads_are_rejected_with_the_offending_field(
    account: str, keys: list[tuple[CacheKind | None, str]], field: str
) -> None:
    with pytest.raises(DomainError) as err:
        await HotCache(MemoryStore(), fake_encode).batch_get(account, keys)
    assert err.value.kind is ErrorKind.INVALID_ARGUMENT
    assert field in [v.field for v in err.value.violations]


def test_a_cached_book_encodes_as_the_canonical_snapshot_with_exact_decimal_strings() -> None:
    view = BookView("BTCUSDT", "prism", (lv("99.50", "1"),), (lv("101", "0.25"),), 20, 11, 3, 4)
    book = market_data_pb2.BookSnapshot.FromString(encode_book(view))
    assert (book.symbol, book.venue, book.sequence, book.depth) == ("BTCUSDT", 1, 11, 20)
    assert [(x.price.value, x.quantity.value) for x in book.bids] == [("99.50", "1")]
    assert [(x.price.value, x.quantity.value) for x in book.asks] == [("101", "0.25")]


def D(value: str) -> decimal_pb2.Decimal:
    return decimal_pb2.Decimal(value=value)


def quote_event(seq: int, bid: str) -> events_pb2.MarketDataEvent:
    return events_pb2.MarketDataEvent(
        event_id=f"quote:ETHUSDT:{seq}",
        quote=market_data_pb2.Quote(symbol="ETHUSDT", venue=venue_pb2.VENUE_PRISM, bid_price=D(bid), sequence=seq),
    )


def book_event(seq: int, bids: list[tuple[str, str]], snapshot: bool = False) -> events_pb2.MarketDataEvent:
    levels = [market_data_pb2.BookLevel(price=D(p), quantity=D(q)) for p, q in bids]
    if snapshot:
        return events_pb2.MarketDataEvent(
            event_id=f"snapshot:BTCUSDT:{seq}",
            book_snapshot=market_data_pb2.BookSnapshot(
                symbol="BTCUSDT", venue=venue_pb2.VENUE_PRISM, sequence=seq, bids=levels
            ),
        )
    return events_pb2.MarketDataEvent(
        event_id=f"book:BTCUSDT:{seq}",
        book_delta=market_data_pb2.BookDelta(
            symbol="BTCUSDT", venue=venue_pb2.VENUE_PRISM, sequence=seq, previous_sequence=seq - 1, bids=levels
        ),
    )


async def test_every_event_of_a_message_is_applied_in_order_and_the_last_quote_wins() -> None:
    quotes = md_message(quote_event(1, "99"), quote_event(2, "99.5"), quote_event(3, "99.25"))
    book = md_message(
        book_event(10, [("99", "1"), ("98", "2")], snapshot=True),
        book_event(11, [("99", "0"), ("99.5", "3")]),  # removes 99, adds 99.5
        book_event(12, [("99.5", "4")]),  # then changes 99.5: only right if applied after 11
    )
    batch = decode_batch([quotes, book])
    assert [u.sequence for u in batch.updates] == [1, 2, 3]
    assert [e.sequence for e in batch.book_events] == [10, 11, 12] and batch.malformed == 0

    store = MemoryStore()
    cache = HotCache(store, fake_encode, book_depth=5)
    assert await cache.apply(batch.updates, batch.book_events) == 2
    cached = market_data_pb2.Quote.FromString(store.data[(CacheKind.QUOTE, "ETHUSDT")].payload)
    assert (cached.sequence, cached.bid_price.value) == (3, "99.25")
    assert store.data[(CacheKind.BOOK, "BTCUSDT")].payload == b"book@12:2"
    assert cache._books["BTCUSDT"].bids[Decimal("99.5")].quantity == Decimal("4")


def test_a_malformed_message_or_event_is_counted_and_the_rest_of_the_batch_still_decodes() -> None:
    bad_level = book_event(11, [("NaN", "1")])
    no_payload = events_pb2.MarketDataEvent(event_id="quote:ETHUSDT:9")
    no_symbol = quote_event(2, "99")
    no_symbol.quote.symbol = ""
    payloads = [
        b"\xff\xff not protobuf",
        md_message(),  # a message without events
        md_message(quote_event(1, "99"), no_payload, no_symbol, quote_event(3, "98")),
        md_message(book_event(10, [("99", "1")], snapshot=True), bad_level, book_event(12, [("98", "1")])),
    ]
    batch = decode_batch(payloads)
    assert batch.malformed == 5
    assert [u.sequence for u in batch.updates] == [1, 3]
    assert [e.sequence for e in batch.book_events] == [10, 12]
