"""An order book rebuilt from canonical snapshots and sequenced deltas.

A delta applies only when its previous_sequence equals the book's sequence; an older delta (a redelivery) is
ignored, a newer one means updates were missed: the book is out of sync until the next snapshot.
"""

from __future__ import annotations

from decimal import Decimal
from enum import Enum

from services.hot_cache.domain.model import BookDeltaIn, BookSnapshotIn, BookView, Level


class Applied(Enum):
    APPLIED = "applied"
    STALE = "stale"
    GAP = "gap"
    NOT_SYNCED = "not_synced"


class Book:
    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.venue = ""
        self.bids: dict[Decimal, Level] = {}
        self.asks: dict[Decimal, Level] = {}
        self.sequence = 0
        self.synced = False
        self.event_time_ns = 0
        self.receive_time_ns = 0

    def apply_snapshot(self, snap: BookSnapshotIn) -> Applied:
        if self.synced and snap.sequence <= self.sequence:
            return Applied.STALE
        self.bids = {lvl.price: lvl for lvl in snap.bids if lvl.quantity > 0}
        self.asks = {lvl.price: lvl for lvl in snap.asks if lvl.quantity > 0}
        self._stamp(snap.venue, snap.sequence, snap.event_time_ns, snap.receive_time_ns)
        self.synced = True
        return Applied.APPLIED

    def apply_delta(self, delta: BookDeltaIn) -> Applied:
        if not self.synced:
            return Applied.NOT_SYNCED
        if delta.sequence <= self.sequence:
            return Applied.STALE
        if delta.previous_sequence != self.sequence:
            self.synced = False
            return Applied.GAP
        for side, levels in ((self.bids, delta.bids), (self.asks, delta.asks)):
            for lvl in levels:
                if lvl.quantity > 0:
                    side[lvl.price] = lvl
                else:
                    side.pop(lvl.price, None)
        self._stamp(delta.venue, delta.sequence, delta.event_time_ns, delta.receive_time_ns)
        return Applied.APPLIED

    def _stamp(self, venue: str, sequence: int, event_time_ns: int, receive_time_ns: int) -> None:
        self.venue = venue
        self.sequence = sequence
        self.event_time_ns = event_time_ns
        self.receive_time_ns = receive_time_ns

    def top(self, depth: int) -> BookView:
        bids = tuple(self.bids[p] for p in sorted(self.bids, reverse=True)[:depth])
        asks = tuple(self.asks[p] for p in sorted(self.asks)[:depth])
        return BookView(
            self.symbol, self.venue, bids, asks, depth, self.sequence, self.event_time_ns, self.receive_time_ns
        )
