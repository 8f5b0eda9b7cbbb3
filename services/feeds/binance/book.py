"""The local order book and the depth-synchronisation state machine. Pure, no I/O.

Binance's procedure ("How to manage a local order book correctly"), as implemented by ``DepthSync``:

1. buffer depth events from the stream; ask for a REST snapshot (``lastUpdateId``);
2. drop buffered events with ``u <= lastUpdateId``; if the first remaining event has ``U > lastUpdateId + 1`` the
   snapshot is older than the stream: fetch another one;
3. the first applied event must bridge the snapshot: ``U <= lastUpdateId + 1 <= u``;
4. afterwards every event must continue the sequence: ``U == previous u + 1`` (an event with ``u <= previous u``
   is a stale duplicate and is dropped); anything else is a gap: discard the book, buffer, new snapshot;
5. quantities are absolute; quantity 0 removes the level (removing an absent level is a no-op).
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from services.feeds.binance.protocol import DepthSnapshot, DepthUpdate, Level


def decimal_str(value: Decimal) -> str:
    """Canonical decimal text: "65000.01000000" -> "65000.01", "1.0E+1" -> "10"."""
    return format(value.normalize(), "f")


class OrderBook:
    """Price levels of one symbol, exact decimals, and the last update id applied."""

    __slots__ = ("asks", "bids", "last_update_id", "symbol")

    def __init__(self, symbol: str, last_update_id: int = 0) -> None:
        self.symbol = symbol
        self.last_update_id = last_update_id
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}

    @classmethod
    def from_snapshot(cls, snapshot: DepthSnapshot) -> OrderBook:
        book = cls(snapshot.symbol, snapshot.last_update_id)
        _set_levels(book.bids, snapshot.bids)
        _set_levels(book.asks, snapshot.asks)
        return book

    def apply(self, update: DepthUpdate) -> None:
        _set_levels(self.bids, update.bids)
        _set_levels(self.asks, update.asks)
        self.last_update_id = update.final_update_id

    def best_bid(self) -> Level | None:
        if not self.bids:
            return None
        price = max(self.bids)
        return price, self.bids[price]

    def best_ask(self) -> Level | None:
        if not self.asks:
            return None
        price = min(self.asks)
        return price, self.asks[price]

    def levels(self) -> tuple[list[Level], list[Level]]:
        """Bids (highest first) and asks (lowest first)."""
        bids = sorted(self.bids.items(), key=lambda lv: lv[0], reverse=True)
        asks = sorted(self.asks.items(), key=lambda lv: lv[0])
        return bids, asks

    def to_dict(self) -> dict[str, Any]:
        """The book in the REST snapshot layout with canonical decimal strings (best levels first)."""
        bids, asks = self.levels()
        return {
            "symbol": self.symbol,
            "lastUpdateId": self.last_update_id,
            "bids": [[decimal_str(p), decimal_str(q)] for p, q in bids],
            "asks": [[decimal_str(p), decimal_str(q)] for p, q in asks],
        }


def _set_levels(side: dict[Decimal, Decimal], levels: Iterable[Level]) -> None:
    for price, qty in levels:
        if qty == 0:
            side.pop(price, None)
        else:
            side[price] = qty


class SyncState(enum.Enum):
    """Where a symbol's depth synchronisation stands."""

    AWAITING_SNAPSHOT = "awaiting_snapshot"  # buffering events; a snapshot is needed
    AWAITING_BRIDGE = "awaiting_bridge"  # snapshot applied; the next event must satisfy U <= lastUpdateId+1 <= u
    LIVE = "live"  # every event continues the sequence


class Outcome(enum.Enum):
    """What ``DepthSync`` did with an input."""

    BUFFERED = "buffered"
    DROPPED_STALE = "dropped_stale"
    APPLIED = "applied"
    GAP = "gap"  # the book was discarded; the event is buffered and a new snapshot is needed
    SNAPSHOT_APPLIED = "snapshot_applied"
    SNAPSHOT_TOO_OLD = "snapshot_too_old"  # the buffer starts after the snapshot; fetch another one
    SNAPSHOT_IGNORED = "snapshot_ignored"  # no snapshot was awaited


@dataclass(slots=True)
class SyncCounters:
    """Counts per outcome, for logs and metrics."""

    applied: int = 0
    buffered: int = 0
    dropped_stale: int = 0
    gaps: int = 0
    snapshots: int = 0
    snapshots_too_old: int = 0
    buffer_overflows: int = 0
    resets: int = 0


class DepthSync:
    """The depth-synchronisation state machine of one symbol (see the module docstring)."""

    def __init__(self, symbol: str, max_buffer: int = 10_000) -> None:
        self.symbol = symbol
        self.state = SyncState.AWAITING_SNAPSHOT
        self.book: OrderBook | None = None
        self.counters = SyncCounters()
        self._buffer: deque[DepthUpdate] = deque()
        self._max_buffer = max_buffer

    @property
    def needs_snapshot(self) -> bool:
        return self.state is SyncState.AWAITING_SNAPSHOT

    @property
    def synced(self) -> bool:
        """True once an event has bridged the snapshot and no gap has been seen since."""
        return self.state is SyncState.LIVE

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def buffered_events(self) -> tuple[DepthUpdate, ...]:
        """The events waiting for a snapshot, oldest first."""
        return tuple(self._buffer)

    def reset(self) -> None:
        """Forget the book and the buffer (for example after the connection dropped)."""
        self.state = SyncState.AWAITING_SNAPSHOT
        self.book = None
        self._buffer.clear()
        self.counters.resets += 1

    def on_update(self, update: DepthUpdate) -> Outcome:
        if self.state is SyncState.AWAITING_SNAPSHOT:
            return self._buffer_event(update)
        assert self.book is not None
        last = self.book.last_update_id
        if update.final_update_id <= last:
            self.counters.dropped_stale += 1
            return Outcome.DROPPED_STALE
        expected_first = last + 1
        continues = (
            update.first_update_id <= expected_first
            if self.state is SyncState.AWAITING_BRIDGE
            else update.first_update_id == expected_first
        )
        if not continues:
            self.counters.gaps += 1
            self.state = SyncState.AWAITING_SNAPSHOT
            self.book = None
            self._buffer.clear()
            self._buffer_event(update)
            return Outcome.GAP
        self.book.apply(update)
        self.state = SyncState.LIVE
        self.counters.applied += 1
        return Outcome.APPLIED

    def on_snapshot(self, snapshot: DepthSnapshot) -> Outcome:
        """Apply a REST snapshot to the buffered events; ignored unless a snapshot is awaited."""
        if self.state is not SyncState.AWAITING_SNAPSHOT:
            return Outcome.SNAPSHOT_IGNORED
        lid = snapshot.last_update_id
        while self._buffer and self._buffer[0].final_update_id <= lid:
            self._buffer.popleft()
            self.counters.dropped_stale += 1
        if self._buffer and self._buffer[0].first_update_id > lid + 1:
            self.counters.snapshots_too_old += 1
            return Outcome.SNAPSHOT_TOO_OLD
        self.book = OrderBook.from_snapshot(snapshot)
        self.state = SyncState.AWAITING_BRIDGE
        self.counters.snapshots += 1
        pending = list(self._buffer)
        self._buffer.clear()
        for i, update in enumerate(pending):
            if self.on_update(update) is Outcome.GAP:
                # on_update re-buffered the gap event; keep the rest behind it for the next snapshot.
                self._buffer.extend(pending[i + 1 :])
                break
        return Outcome.SNAPSHOT_APPLIED

    def _buffer_event(self, update: DepthUpdate) -> Outcome:
        if len(self._buffer) >= self._max_buffer:
            # Dropping the oldest event makes the next snapshot look "too old" if it predates it; that self-heals.
            self._buffer.popleft()
            self.counters.buffer_overflows += 1
        self._buffer.append(update)
        self.counters.buffered += 1
        return Outcome.BUFFERED
