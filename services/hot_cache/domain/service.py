"""hot-cache use cases: apply market events to the cache (guarded by sequence) and read it back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog

from services.hot_cache.domain.book import Applied, Book
from services.hot_cache.domain.model import BookDeltaIn, BookSnapshotIn, CacheKind, CacheUpdate, Lookup
from services.hot_cache.domain.ports import BookEncoder, CacheStore
from services.runtime.errors import FieldViolation, Validator, invalid_argument

log = structlog.get_logger("hot_cache")

MAX_KEYS = 500
NOT_AVAILABLE = "DATA_NOT_AVAILABLE"

BookEvent = BookSnapshotIn | BookDeltaIn


@dataclass
class UpdateCounters:
    received: int = 0
    stored: int = 0
    stale_or_duplicate: int = 0
    book_gaps: int = 0
    malformed: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


class HotCache:
    def __init__(self, store: CacheStore, encode_book: BookEncoder, book_depth: int = 20) -> None:
        self._store = store
        self._encode_book = encode_book
        self._depth = book_depth
        self._books: dict[str, Book] = {}
        self.counters = UpdateCounters()

    async def apply(self, updates: Sequence[CacheUpdate], book_events: Sequence[BookEvent] = ()) -> int:
        """Apply one batch: book events rebuild in-memory books whose top levels join the quote/trade updates.
        Returns how many keys changed in the store."""
        pending: dict[tuple[CacheKind, str], CacheUpdate] = {}
        for update in updates:
            self._keep_newest(pending, update)
        dirty: set[str] = set()
        for event in book_events:
            book = self._books.setdefault(event.symbol, Book(event.symbol))
            result = book.apply_snapshot(event) if isinstance(event, BookSnapshotIn) else book.apply_delta(event)
            if result is Applied.GAP:
                self.counters.book_gaps += 1
                log.warning("hot_cache.book_gap", symbol=event.symbol, sequence=event.sequence)
            elif result is Applied.APPLIED:
                dirty.add(book.symbol)
        for symbol in dirty:
            view = self._books[symbol].top(self._depth)
            pending[(CacheKind.BOOK, symbol)] = CacheUpdate(
                CacheKind.BOOK, symbol, view.sequence, self._encode_book(view)
            )
        self.counters.received += len(updates) + len(book_events)
        stored = await self._store.put_many(list(pending.values())) if pending else 0
        self.counters.stored += stored
        self.counters.stale_or_duplicate += len(pending) - stored
        return stored

    @staticmethod
    def _keep_newest(pending: dict[tuple[CacheKind, str], CacheUpdate], update: CacheUpdate) -> None:
        key = (update.kind, update.symbol)
        current = pending.get(key)
        if current is None or update.sequence > current.sequence:
            pending[key] = update

    async def batch_get(self, account_id: str, keys: Sequence[tuple[CacheKind | None, str]]) -> list[Lookup]:
        check = Validator()
        check.require(bool(account_id), "account_id", "required")
        check.require(0 < len(keys) <= MAX_KEYS, "keys", f"between 1 and {MAX_KEYS} keys")
        for i, (kind, symbol) in enumerate(keys):
            check.require(kind is not None, f"keys[{i}].kind", "required")
            if kind is not None and kind.is_market:
                check.require(bool(symbol), f"keys[{i}].symbol", "required for market keys")
        check.raise_if_any()
        market = [(k, s) for k, s in keys if k is not None and k.is_market]
        values = iter(await self._store.get_many(market)) if market else iter(())
        results = []
        for kind, symbol in keys:
            assert kind is not None
            if kind.is_market:
                value = next(values)
                results.append(Lookup(kind, symbol, value, "" if value else NOT_AVAILABLE))
            else:
                # Positions and PnL are written by the trading core (ptrc, pnl), which does not exist yet.
                results.append(Lookup(kind, symbol, None, NOT_AVAILABLE))
        return results

    async def quotes(self, symbols: Sequence[str]) -> list[Lookup]:
        chosen = sorted(set(symbols)) if symbols else sorted(await self._store.symbols(CacheKind.QUOTE))
        if not chosen:
            return []
        values = await self._store.get_many([(CacheKind.QUOTE, s) for s in chosen])
        return [Lookup(CacheKind.QUOTE, s, v) for s, v in zip(chosen, values, strict=True) if v is not None]

    async def book(self, symbol: str) -> Lookup:
        if not symbol:
            raise invalid_argument(FieldViolation("symbol", "required"))
        (value,) = await self._store.get_many([(CacheKind.BOOK, symbol)])
        return Lookup(CacheKind.BOOK, symbol, value, "" if value else NOT_AVAILABLE)
