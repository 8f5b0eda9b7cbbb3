"""Per-symbol normalization state: canonical sequences, the level book, venue sequence tracking."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from services.normalizer.domain.book import LevelBook
from services.normalizer.domain.model import (
    BookDelta,
    BookSnapshot,
    Event,
    Level,
    Quote,
    Sequences,
    Side,
    Trade,
    Venue,
    event_for,
)

SNAPSHOT_EVERY_NS = 30 * 1_000_000_000


@dataclass
class SymbolState:
    """Everything the normalizer remembers about one canonical symbol."""

    symbol: str
    venue: Venue
    seq: Sequences = field(default_factory=Sequences)
    book: LevelBook = field(default_factory=LevelBook)
    # The book is usable only after a full image/snapshot and while no venue gap was seen since.
    synced: bool = False
    # Last venue sequence per venue stream (prism feed sequence; binance trade id, ticker id, depth final id).
    last_venue: dict[str, int] = field(default_factory=dict)
    last_snapshot_ns: int = 0
    last_top: tuple[Level | None, Level | None] = (None, None)

    def quote(self, bid: Level | None, ask: Level | None, event_ns: int, recv_ns: int) -> Event:
        self.seq.quote += 1
        self.last_top = (bid, ask)
        return event_for(Quote(self.symbol, self.venue, bid, ask, self.seq.quote, event_ns, recv_ns))

    def quote_if_top_changed(self, event_ns: int, recv_ns: int) -> list[Event]:
        top = (self.book.best_bid(), self.book.best_ask())
        if top == self.last_top:
            return []
        return [self.quote(top[0], top[1], event_ns, recv_ns)]

    def trade(
        self, trade_id: str, price: Decimal, quantity: Decimal, aggressor: Side, event_ns: int, recv_ns: int
    ) -> Event:
        self.seq.trade += 1
        return event_for(
            Trade(self.symbol, self.venue, trade_id, price, quantity, aggressor, self.seq.trade, event_ns, recv_ns)
        )

    def delta(self, bids: tuple[Level, ...], asks: tuple[Level, ...], event_ns: int, recv_ns: int) -> list[Event]:
        """Apply a change to the book and emit it (plus a periodic snapshot at least every 30 s)."""
        self.book.apply(bids, asks)
        previous = self.seq.book
        self.seq.book += 1
        events = [event_for(BookDelta(self.symbol, self.venue, bids, asks, self.seq.book, previous, event_ns, recv_ns))]
        if recv_ns - self.last_snapshot_ns >= SNAPSHOT_EVERY_NS:
            events.append(self.snapshot(event_ns, recv_ns))
        return events

    def snapshot(self, event_ns: int, recv_ns: int) -> Event:
        self.last_snapshot_ns = recv_ns
        bids, asks = self.book.levels()
        return event_for(BookSnapshot(self.symbol, self.venue, bids, asks, self.seq.book, event_ns, recv_ns))

    def resync(self, bids: tuple[Level, ...], asks: tuple[Level, ...], event_ns: int, recv_ns: int) -> Event:
        """A full image from the venue. If it changes what clients hold (or the book was out of sync), it is a
        re-synchronization point: it takes the next book sequence, so a client's next delta shows a jump."""
        if not (self.synced and self.book.same_as(bids, asks)):
            self.book.replace(bids, asks)
            self.seq.book += 1
        self.synced = True
        return self.snapshot(event_ns, recv_ns)

    def check_sequence(self, stream: str, sequence: int, contiguous: bool = True) -> str:
        """Classify a venue sequence number: "ok", "duplicate" (seen or older) or "gap" (missed some)."""
        last = self.last_venue.get(stream)
        if last is not None and sequence <= last:
            return "duplicate"
        self.last_venue[stream] = sequence
        if contiguous and last is not None and sequence != last + 1:
            return "gap"
        return "ok"
