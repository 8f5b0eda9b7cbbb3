"""In-process fan-out of market data to stream subscribers, and the latest state per symbol.

One upstream subscription per kind feeds `MarketData`; every client stream registers a subscription with its
own bounded queue and removes it when the stream ends (including when the client disappears).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from services.marketdata.domain.batching import BatchGroup, BatchMember, BatchOptions, Encode, Schedule, call_later
from services.marketdata.domain.book import Applied, Book, Delta, Levels, Snapshot, diff_side
from services.marketdata.domain.queues import BookQueue, ConflatingQueue, DropOldestQueue

T = TypeVar("T")

_ids = itertools.count(1)


@dataclass(eq=False)
class Subscription(Generic[T]):
    """One client stream of quotes or trades: its symbol filter (empty = all) and its queue."""

    kind: str
    symbols: frozenset[str]
    queue: ConflatingQueue[str, T] | DropOldestQueue[T]
    id: int = field(default_factory=lambda: next(_ids))


@dataclass(eq=False)
class GroupSubscription(Generic[T]):
    """The one fan-out entry of a group of batched streams (see batching.BatchGroup)."""

    kind: str
    symbols: frozenset[str]
    queue: BatchGroup[T]
    id: int = field(default_factory=lambda: next(_ids))


Entry = Subscription[T] | GroupSubscription[T]


class Fanout(Generic[T]):
    """Subscribers of one kind (quotes or trades), indexed by symbol."""

    def __init__(
        self,
        kind: str,
        make_queue: Callable[[], ConflatingQueue[str, T] | DropOldestQueue[T]],
        make_group: Callable[[frozenset[str], BatchOptions], BatchGroup[T]] | None = None,
    ) -> None:
        self.kind = kind
        self.make_queue = make_queue
        self.make_group = make_group
        self.by_symbol: dict[str, dict[int, Entry[T]]] = {}
        self.wildcard: dict[int, Entry[T]] = {}
        # Batched streams: one fan-out entry per (symbols, options), shared by its members.
        self.groups: dict[tuple[frozenset[str], BatchOptions], GroupSubscription[T]] = {}
        self.published = 0

    def subscribe(self, symbols: Iterable[str]) -> Subscription[T]:
        sub = Subscription(self.kind, frozenset(symbols), self.make_queue())
        self._add(sub)
        return sub

    def subscribe_batched(self, symbols: Iterable[str], options: BatchOptions) -> BatchMember:
        """A batched stream: joins the group of streams with the same symbols and options (created on demand)."""
        if self.make_group is None:
            raise RuntimeError(f"no batch encoder for {self.kind}")
        key = (frozenset(symbols), options)
        entry = self.groups.get(key)
        if entry is None:
            entry = self.groups[key] = GroupSubscription(self.kind, key[0], self.make_group(key[0], options))
            self._add(entry)
        return entry.queue.join()

    def unsubscribe_batched(self, member: BatchMember) -> None:
        group = member.group
        if group.leave(member):
            entry = self.groups.pop((group.symbols, group.options), None)
            if entry is not None:
                self.unsubscribe(entry)

    def _add(self, sub: Entry[T]) -> None:
        if not sub.symbols:
            self.wildcard[sub.id] = sub
        for s in sub.symbols:
            self.by_symbol.setdefault(s, {})[sub.id] = sub

    def unsubscribe(self, sub: Entry[T]) -> None:
        self.wildcard.pop(sub.id, None)
        for s in sub.symbols:
            subs = self.by_symbol.get(s)
            if subs is not None:
                subs.pop(sub.id, None)
                if not subs:
                    del self.by_symbol[s]

    def publish(self, symbol: str, item: T) -> None:
        self.published += 1
        for sub in self.wildcard.values():
            sub.queue.put(item)
        for sub in self.by_symbol.get(symbol, {}).values():
            sub.queue.put(item)

    def count(self) -> int:
        """Client streams: unbatched subscriptions plus the members of every batch group."""
        ids = set(self.wildcard)
        for subs in self.by_symbol.values():
            ids.update(subs)
        members = sum(len(entry.queue.members) for entry in self.groups.values())
        return len(ids) - len(self.groups) + members


@dataclass(eq=False)
class BookSubscription:
    """One client book stream: a symbol at a depth; deltas are stamped with the client's last sequence."""

    symbol: str
    depth: int
    queue: BookQueue[Delta]
    last_sent: int = 0
    id: int = field(default_factory=lambda: next(_ids))

    def stamp(self, delta: Delta) -> Delta:
        """previous_sequence = what this client holds, so a client checks continuity of its own stream."""
        out = Delta(delta.sequence, self.last_sent, delta.bids, delta.asks, delta.event_time_ns, delta.receive_time_ns)
        self.last_sent = delta.sequence
        return out


class BookHub:
    """The books of all symbols (from snapshots + deltas) and the depth-limited views streamed to clients."""

    def __init__(self, queue_capacity: int) -> None:
        self.queue_capacity = queue_capacity
        self.books: dict[str, Book] = {}
        self.subs: dict[str, dict[int, BookSubscription]] = {}
        self.views: dict[tuple[str, int], tuple[Levels, Levels]] = {}

    def book(self, symbol: str) -> Book:
        book = self.books.get(symbol)
        if book is None:
            book = self.books[symbol] = Book(symbol)
        return book

    def on_snapshot(self, symbol: str, snap: Snapshot) -> None:
        book = self.book(symbol)
        if book.synced and snap.sequence == book.sequence:
            return  # a periodic snapshot of what we already hold
        if book.synced and snap.sequence < book.sequence:
            return  # older than our book (a replayed snapshot)
        book.apply_snapshot(snap)
        for key in [k for k in self.views if k[0] == symbol]:
            self.views[key] = book.view(key[1])
        for sub in self.subs.get(symbol, {}).values():
            sub.queue.resync()

    def on_delta(self, symbol: str, delta: Delta) -> Applied:
        book = self.book(symbol)
        result = book.apply_delta(delta)
        if result is not Applied.APPLIED:
            return result
        subs = self.subs.get(symbol)
        if not subs:
            return result
        for depth in {s.depth for s in subs.values()}:
            old_bids, old_asks = self.views[(symbol, depth)]
            new_bids, new_asks = book.view(depth)
            self.views[(symbol, depth)] = (new_bids, new_asks)
            bids, asks = diff_side(old_bids, new_bids), diff_side(old_asks, new_asks)
            if not (bids or asks):
                continue
            view_delta = Delta(
                delta.sequence, delta.previous_sequence, bids, asks, delta.event_time_ns, delta.receive_time_ns
            )
            for sub in subs.values():
                if sub.depth == depth:
                    sub.queue.put(view_delta)
        return result

    def subscribe(self, symbol: str, depth: int) -> BookSubscription:
        sub = BookSubscription(symbol, depth, BookQueue(self.queue_capacity))
        self.subs.setdefault(symbol, {})[sub.id] = sub
        if (symbol, depth) not in self.views:
            self.views[(symbol, depth)] = self.book(symbol).view(depth)
        return sub

    def unsubscribe(self, sub: BookSubscription) -> None:
        subs = self.subs.get(sub.symbol, {})
        subs.pop(sub.id, None)
        if not any(s.depth == sub.depth for s in subs.values()):
            self.views.pop((sub.symbol, sub.depth), None)
        if not subs:
            self.subs.pop(sub.symbol, None)

    def take_snapshot(self, sub: BookSubscription) -> Snapshot | None:
        """The snapshot a subscriber needs now, or None while the book waits for a re-synchronization."""
        book = self.book(sub.symbol)
        if not book.synced:
            return None
        snap = book.snapshot(sub.depth)
        sub.queue.items.clear()
        sub.queue.snapshot_sent()
        sub.last_sent = snap.sequence
        return snap

    def count(self) -> int:
        return sum(len(s) for s in self.subs.values())


@dataclass
class QueueLimits:
    quotes: int = 1024
    trades: int = 1024
    book_deltas: int = 1024
    batched: int = 4096


class MarketData(Generic[T]):
    """Latest quote and trade per symbol, the books, and the fan-out to subscribers.

    Quotes and trades are opaque items (the adapter's message type); `symbol_of` reads their symbol;
    `encode_quotes` / `encode_trades` turn a batch of them into one stream message (for batched streams).
    """

    def __init__(
        self,
        symbol_of: Callable[[T], str],
        limits: QueueLimits | None = None,
        encode_quotes: Encode[T] | None = None,
        encode_trades: Encode[T] | None = None,
        schedule: Schedule = call_later,
    ) -> None:
        limits = limits or QueueLimits()
        self.symbol_of = symbol_of
        self.encode_quotes = encode_quotes
        self.latest_quote: dict[str, T] = {}
        self.last_trade: dict[str, T] = {}

        def quote_group(symbols: frozenset[str], options: BatchOptions) -> BatchGroup[T]:
            assert encode_quotes is not None
            return BatchGroup("quotes", symbols, options, encode_quotes, limits.batched, symbol_of, schedule)

        def trade_group(symbols: frozenset[str], options: BatchOptions) -> BatchGroup[T]:
            assert encode_trades is not None
            return BatchGroup("trades", symbols, options, encode_trades, limits.batched, None, schedule)

        self.quotes: Fanout[T] = Fanout(
            "quotes", lambda: ConflatingQueue(symbol_of, limits.quotes), quote_group if encode_quotes else None
        )
        self.trades: Fanout[T] = Fanout(
            "trades", lambda: DropOldestQueue(limits.trades), trade_group if encode_trades else None
        )
        self.books = BookHub(limits.book_deltas)

    def on_quote(self, quote: T) -> None:
        symbol = self.symbol_of(quote)
        self.latest_quote[symbol] = quote
        self.quotes.publish(symbol, quote)

    def on_trade(self, trade: T) -> None:
        symbol = self.symbol_of(trade)
        self.last_trade[symbol] = trade
        self.trades.publish(symbol, trade)

    def subscribe_quotes(self, symbols: Iterable[str]) -> Subscription[T]:
        """A quote subscription that starts with the latest known quote of each requested symbol."""
        sub = self.quotes.subscribe(symbols)
        for symbol, quote in self.latest_quote.items():
            if not sub.symbols or symbol in sub.symbols:
                sub.queue.put(quote)
        return sub

    def subscribe_quotes_batched(self, symbols: Iterable[str], options: BatchOptions) -> BatchMember:
        """A batched quote stream; `latest_quotes_frames` gives what it starts with (and catches up with)."""
        return self.quotes.subscribe_batched(symbols, options)

    def latest_quotes_frames(self, member: BatchMember) -> list[bytes]:
        """Batches with the latest quote of each of the member's symbols (none when no quote is known yet)."""
        symbols = member.group.symbols
        latest = [q for s, q in self.latest_quote.items() if not symbols or s in symbols]
        step = member.group.options.max_batch
        encode = self.encode_quotes
        if encode is None:
            return []
        return [encode(latest[i : i + step]) for i in range(0, len(latest), step)]

    def subscriber_counts(self) -> dict[str, int]:
        return {"quotes": self.quotes.count(), "trades": self.trades.count(), "books": self.books.count()}
