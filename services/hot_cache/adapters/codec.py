"""Canonical protobuf <-> hot-cache domain. Cached quotes and trades are the canonical trade.type.v1 messages,
serialized; books are trade.type.v1.BookSnapshot of the top levels."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from google.protobuf.message import DecodeError
from trade.normalizer.v1 import events_pb2
from trade.type.v1 import decimal_pb2, market_data_pb2, venue_pb2

from services.hot_cache.domain.model import BookDeltaIn, BookSnapshotIn, BookView, CacheKind, CacheUpdate, Level
from services.hot_cache.domain.service import BookEvent

_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]{1,18})?")


class MalformedEvent(ValueError):
    """Not a valid canonical market-data event."""


@dataclass
class DecodedBatch:
    updates: list[CacheUpdate] = field(default_factory=list)
    book_events: list[BookEvent] = field(default_factory=list)
    malformed: int = 0


def _decimal(value: decimal_pb2.Decimal) -> Decimal:
    if not _DECIMAL.fullmatch(value.value):
        raise MalformedEvent(f"not a decimal: {value.value!r}")
    return Decimal(value.value)


def _levels(levels: Iterable[market_data_pb2.BookLevel]) -> tuple[Level, ...]:
    return tuple(Level(_decimal(lvl.price), _decimal(lvl.quantity), lvl.order_count) for lvl in levels)


def venue_token(venue: venue_pb2.Venue.ValueType) -> str:
    name = venue_pb2.Venue.Name(venue) if venue in venue_pb2.Venue.values() else "VENUE_UNSPECIFIED"
    return name.removeprefix("VENUE_").lower()


def venue_from_token(token: str) -> venue_pb2.Venue.ValueType:
    name = "VENUE_" + token.upper()
    known = set(venue_pb2.Venue.keys())
    return venue_pb2.Venue.Value(name) if name in known else venue_pb2.VENUE_UNSPECIFIED


def decode_event(event: events_pb2.MarketDataEvent, out: DecodedBatch) -> None:
    kind = event.WhichOneof("payload")
    if kind == "quote":
        if not event.quote.symbol:
            raise MalformedEvent("quote without symbol")
        q = event.quote
        out.updates.append(CacheUpdate(CacheKind.QUOTE, q.symbol, q.sequence, q.SerializeToString()))
    elif kind == "trade":
        t = event.trade
        if not t.symbol:
            raise MalformedEvent("trade without symbol")
        out.updates.append(CacheUpdate(CacheKind.LAST_TRADE, t.symbol, t.sequence, t.SerializeToString()))
    elif kind == "book_snapshot":
        s = event.book_snapshot
        out.book_events.append(
            BookSnapshotIn(
                s.symbol, venue_token(s.venue), _levels(s.bids), _levels(s.asks), s.sequence,
                s.event_time_ns, s.receive_time_ns,
            )
        )  # fmt: skip
    elif kind == "book_delta":
        d = event.book_delta
        out.book_events.append(
            BookDeltaIn(
                d.symbol, venue_token(d.venue), _levels(d.bids), _levels(d.asks), d.sequence, d.previous_sequence,
                d.event_time_ns, d.receive_time_ns,
            )
        )  # fmt: skip
    else:
        raise MalformedEvent("event without payload")


def decode_batch(payloads: Iterable[bytes]) -> DecodedBatch:
    """Decode MD messages (each a MarketDataBatch: one or more events of its subject, in sequence order), keeping
    every event in order. An undecodable or empty message counts once as malformed, and so does each invalid event
    of a message, whose other events are still applied."""
    out = DecodedBatch()
    for data in payloads:
        try:
            events = events_pb2.MarketDataBatch.FromString(data).events
        except DecodeError:
            out.malformed += 1
            continue
        if not events:
            out.malformed += 1
        for event in events:
            try:
                decode_event(event, out)
            except MalformedEvent:
                out.malformed += 1
    return out


def _level_pb(level: Level) -> market_data_pb2.BookLevel:
    return market_data_pb2.BookLevel(
        price=decimal_pb2.Decimal(value=str(level.price)),
        quantity=decimal_pb2.Decimal(value=str(level.quantity)),
        order_count=level.order_count,
    )


def encode_book(view: BookView) -> bytes:
    return market_data_pb2.BookSnapshot(
        symbol=view.symbol,
        venue=venue_from_token(view.venue),
        bids=[_level_pb(lvl) for lvl in view.bids],
        asks=[_level_pb(lvl) for lvl in view.asks],
        depth=view.depth,
        sequence=view.sequence,
        event_time_ns=view.event_time_ns,
        receive_time_ns=view.receive_time_ns,
    ).SerializeToString()
