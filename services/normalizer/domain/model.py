"""Canonical market data and venue-native messages as plain Python (no protobuf, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import Enum


class Venue(Enum):
    """Venues the normalizer knows; the value is the subject token (md.raw.<token>.<symbol>)."""

    UNSPECIFIED = "unspecified"
    PRISM = "prism"
    PAPER = "paper"
    BINANCE_SPOT = "binance_spot"


class Side(Enum):
    UNSPECIFIED = 0
    BUY = 1
    SELL = 2


class PayloadFormat(Enum):
    UNSPECIFIED = 0
    JSON = 1
    PROTOBUF = 2


class MalformedMessage(ValueError):
    """A raw message that cannot be decoded or validated; it is counted, logged and skipped."""


def decimal_text(value: Decimal) -> str:
    """Normalized decimal text: no exponent, no trailing zeros, never "-0" ("25.35190000" -> "25.3519")."""
    d = value.normalize()
    if d == 0:
        return "0"
    text = format(d, "f")
    return text


def parse_decimal(text: object, what: str) -> Decimal:
    """A venue decimal string -> Decimal; non-negative and finite, else MalformedMessage."""
    if not isinstance(text, str | int) or isinstance(text, bool):
        raise MalformedMessage(f"{what}: expected a decimal string, got {text!r}")
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise MalformedMessage(f"{what}: not a decimal: {text!r}") from exc
    if not value.is_finite() or value < 0:
        raise MalformedMessage(f"{what}: must be a finite non-negative number: {text!r}")
    return value


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One venue-native message as captured by a feed handler (the RawMarketData envelope)."""

    venue: Venue
    symbol: str
    format: PayloadFormat
    payload_type: str
    payload: bytes
    venue_sequence: int
    receive_time_ns: int


# --- venue-native PRISM messages (decoded from protobuf by an adapter) -----------------------------------------


@dataclass(frozen=True, slots=True)
class PrismLevel:
    price_ticks: int
    quantity_lots: int
    order_count: int


@dataclass(frozen=True, slots=True)
class PrismLevelUpdate:
    side: Side
    level: PrismLevel


@dataclass(frozen=True, slots=True)
class PrismTrade:
    trade_id: int
    price_ticks: int
    quantity_lots: int
    aggressor_side: Side


@dataclass(frozen=True, slots=True)
class PrismBookImage:
    bids: tuple[PrismLevel, ...]
    asks: tuple[PrismLevel, ...]


@dataclass(frozen=True, slots=True)
class PrismMessage:
    symbol: str
    sequence: int
    exchange_time_ns: int
    body: PrismLevelUpdate | PrismTrade | PrismBookImage | None


# --- canonical market data -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Level:
    """An aggregated price level; quantity 0 in a delta removes the level."""

    price: Decimal
    quantity: Decimal
    order_count: int = 0


@dataclass(frozen=True, slots=True)
class Quote:
    symbol: str
    venue: Venue
    bid: Level | None
    ask: Level | None
    sequence: int
    event_time_ns: int
    receive_time_ns: int


@dataclass(frozen=True, slots=True)
class Trade:
    symbol: str
    venue: Venue
    trade_id: str
    price: Decimal
    quantity: Decimal
    aggressor_side: Side
    sequence: int
    event_time_ns: int
    receive_time_ns: int


@dataclass(frozen=True, slots=True)
class BookDelta:
    symbol: str
    venue: Venue
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    sequence: int
    previous_sequence: int
    event_time_ns: int
    receive_time_ns: int


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    symbol: str
    venue: Venue
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    sequence: int
    event_time_ns: int
    receive_time_ns: int
    depth: int = 0


Canonical = Quote | Trade | BookDelta | BookSnapshot


@dataclass(frozen=True, slots=True)
class Event:
    """A canonical event ready to publish: subject md.<kind>.<symbol>, Nats-Msg-Id = event_id."""

    event_id: str
    subject: str
    payload: Canonical


def event_for(payload: Canonical) -> Event:
    if isinstance(payload, Quote):
        kind, subject_kind = "quote", "quote"
    elif isinstance(payload, Trade):
        kind, subject_kind = "trade", "trade"
    elif isinstance(payload, BookDelta):
        kind, subject_kind = "book", "book"
    else:
        kind, subject_kind = "snapshot", "book"
    return Event(f"{kind}:{payload.symbol}:{payload.sequence}", f"md.{subject_kind}.{payload.symbol}", payload)


@dataclass
class Instrument:
    """What the normalizer needs of an instrument: the scale of PRISM's ticks and lots."""

    symbol: str
    tick_size: Decimal
    lot_size: Decimal


@dataclass
class Sequences:
    """Last canonical sequences published for a symbol (resumed from the MD stream after a restart)."""

    quote: int = 0
    trade: int = 0
    book: int = 0


@dataclass
class FeedCounters:
    """Counters of one (venue, symbol) feed."""

    messages_in: int = 0
    messages_out: int = 0
    malformed: int = 0
    gaps: int = 0
    duplicates: int = 0
    last_venue_sequence: int = 0
    last_event_time_ns: int = 0
    last_receive_time_ns: int = 0
    last_error: bool = False


@dataclass
class VenueCounters:
    messages_in: int = 0
    messages_out: int = 0
    malformed: int = 0
    gaps: int = 0
    duplicates: int = 0
    last_receive_time_ns: int = 0
    feeds: dict[str, FeedCounters] = field(default_factory=dict)
