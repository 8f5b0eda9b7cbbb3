"""An order book built from a snapshot plus sequenced deltas, with gap detection and depth-limited views."""

from __future__ import annotations

from bisect import bisect_left, insort
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum


@dataclass(frozen=True, slots=True)
class Level:
    """An aggregated price level; in a delta, quantity 0 removes the level."""

    price: Decimal
    quantity: Decimal
    order_count: int = 0


Levels = tuple[Level, ...]


@dataclass(frozen=True, slots=True)
class Delta:
    """A book change (sequence, previous_sequence) as published by the normalizer."""

    sequence: int
    previous_sequence: int
    bids: Levels
    asks: Levels
    event_time_ns: int = 0
    receive_time_ns: int = 0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A full book (bids best first, asks best first) at a sequence."""

    sequence: int
    bids: Levels
    asks: Levels
    event_time_ns: int = 0
    receive_time_ns: int = 0
    depth: int = 0
    # The venue as an opaque code (the adapter's enum value).
    venue: int = 0


class Applied(Enum):
    APPLIED = "applied"
    # Older than the book (already included): ignored.
    STALE = "stale"
    # previous_sequence != the book's sequence: updates were missed; the book waits for a snapshot.
    GAP = "gap"
    # No snapshot yet (or since a gap): deltas cannot be applied.
    UNSYNCED = "unsynced"


class _Side:
    """Levels of one side kept sorted by price ascending; best is the last (bids) or first (asks)."""

    def __init__(self, descending: bool) -> None:
        self.descending = descending
        self.prices: list[Decimal] = []
        self.levels: dict[Decimal, Level] = {}

    def clear(self) -> None:
        self.prices.clear()
        self.levels.clear()

    def set(self, level: Level) -> None:
        if level.quantity == 0:
            if self.levels.pop(level.price, None) is not None:
                i = bisect_left(self.prices, level.price)
                del self.prices[i]
            return
        if level.price not in self.levels:
            insort(self.prices, level.price)
        self.levels[level.price] = level

    def top(self, depth: int) -> Levels:
        """Best `depth` levels, best first (depth 0 = all)."""
        if self.descending:
            prices = self.prices[::-1] if depth <= 0 else self.prices[: -depth - 1 : -1]
        else:
            prices = self.prices if depth <= 0 else self.prices[:depth]
        return tuple(self.levels[p] for p in prices)


class Book:
    """A symbol's book. `sequence` is the last change included; `synced` is False until a snapshot arrives and
    again after a gap."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.bids = _Side(descending=True)
        self.asks = _Side(descending=False)
        self.sequence = 0
        self.synced = False
        self.event_time_ns = 0
        self.receive_time_ns = 0
        self.gaps = 0
        self.venue = 0

    def apply_snapshot(self, snap: Snapshot) -> None:
        self.bids.clear()
        self.asks.clear()
        for lvl in snap.bids:
            self.bids.set(lvl)
        for lvl in snap.asks:
            self.asks.set(lvl)
        self.sequence = snap.sequence
        self.synced = True
        self.venue = snap.venue
        self.event_time_ns, self.receive_time_ns = snap.event_time_ns, snap.receive_time_ns

    def apply_delta(self, delta: Delta) -> Applied:
        if not self.synced:
            return Applied.UNSYNCED
        if delta.sequence <= self.sequence:
            return Applied.STALE
        if delta.previous_sequence != self.sequence:
            self.synced = False
            self.gaps += 1
            return Applied.GAP
        for lvl in delta.bids:
            self.bids.set(lvl)
        for lvl in delta.asks:
            self.asks.set(lvl)
        self.sequence = delta.sequence
        self.event_time_ns, self.receive_time_ns = delta.event_time_ns, delta.receive_time_ns
        return Applied.APPLIED

    def view(self, depth: int) -> tuple[Levels, Levels]:
        return self.bids.top(depth), self.asks.top(depth)

    def snapshot(self, depth: int) -> Snapshot:
        bids, asks = self.view(depth)
        return Snapshot(self.sequence, bids, asks, self.event_time_ns, self.receive_time_ns, depth, self.venue)


def diff_side(old: Levels, new: Levels) -> Levels:
    """Levels that changed between two views of one side; a level that left the view gets quantity 0."""
    before = {lvl.price: lvl for lvl in old}
    after = {lvl.price: lvl for lvl in new}
    changed = [lvl for lvl in new if before.get(lvl.price) != lvl]
    removed = [Level(p, Decimal(0)) for p in before if p not in after]
    return tuple(changed + removed)
