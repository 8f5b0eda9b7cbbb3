"""Cached market state. Values are opaque encoded payloads tagged with the sequence they were built from;
books are kept in memory as exact Decimal levels and cached as their top N levels."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum


class CacheKind(Enum):
    QUOTE = "quote"
    BOOK = "book"
    LAST_TRADE = "trade"
    POSITION = "position"
    PNL = "pnl"

    @property
    def is_market(self) -> bool:
        return self in (CacheKind.QUOTE, CacheKind.BOOK, CacheKind.LAST_TRADE)


def is_newer(stored_sequence: int | None, incoming_sequence: int) -> bool:
    """The sequence guard: a value replaces the cached one only if its sequence is strictly higher.

    A redelivered or replayed event (equal or lower sequence) changes nothing. The Valkey store applies the
    same rule atomically (server-side script), so concurrent writers cannot move a key backwards.
    """
    return stored_sequence is None or incoming_sequence > stored_sequence


@dataclass(frozen=True, slots=True)
class CacheUpdate:
    """A new value for a market key (payload encoded by an adapter)."""

    kind: CacheKind
    symbol: str
    sequence: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class CachedValue:
    kind: CacheKind
    symbol: str
    sequence: int
    payload: bytes
    update_time_ns: int


@dataclass(frozen=True, slots=True)
class Level:
    price: Decimal
    quantity: Decimal
    order_count: int = 0


@dataclass(frozen=True, slots=True)
class BookSnapshotIn:
    symbol: str
    venue: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    sequence: int
    event_time_ns: int
    receive_time_ns: int


@dataclass(frozen=True, slots=True)
class BookDeltaIn:
    symbol: str
    venue: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    sequence: int
    previous_sequence: int
    event_time_ns: int
    receive_time_ns: int


@dataclass(frozen=True, slots=True)
class BookView:
    """The top levels of a book: bids best (highest) first, asks best (lowest) first."""

    symbol: str
    venue: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    depth: int
    sequence: int
    event_time_ns: int
    receive_time_ns: int


@dataclass(frozen=True, slots=True)
class Lookup:
    """The result for one requested key: a value, or the reason there is none."""

    kind: CacheKind
    symbol: str
    value: CachedValue | None
    missing_reason: str = ""
