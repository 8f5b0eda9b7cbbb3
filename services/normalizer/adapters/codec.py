"""Protobuf <-> normalizer domain: the RawMarketData envelope, PRISM's feed message, MarketDataEvent."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from decimal import Decimal

from google.protobuf.message import DecodeError
from trade.normalizer.v1 import events_pb2
from trade.prism.v1 import feed_pb2
from trade.type.v1 import decimal_pb2, market_data_pb2, order_pb2, venue_pb2

from services.normalizer.domain.model import (
    BookDelta,
    BookSnapshot,
    Event,
    Level,
    MalformedMessage,
    PayloadFormat,
    PrismBookImage,
    PrismLevel,
    PrismLevelUpdate,
    PrismMessage,
    PrismTrade,
    Quote,
    RawMessage,
    Sequences,
    Side,
    Trade,
    Venue,
    decimal_text,
)

VENUE_TO_PB = {
    Venue.UNSPECIFIED: venue_pb2.VENUE_UNSPECIFIED,
    Venue.PRISM: venue_pb2.VENUE_PRISM,
    Venue.PAPER: venue_pb2.VENUE_PAPER,
    Venue.BINANCE_SPOT: venue_pb2.VENUE_BINANCE_SPOT,
}
PB_TO_VENUE = {v: k for k, v in VENUE_TO_PB.items()}
SIDE_TO_PB = {
    Side.UNSPECIFIED: order_pb2.SIDE_UNSPECIFIED,
    Side.BUY: order_pb2.SIDE_BUY,
    Side.SELL: order_pb2.SIDE_SELL,
}
PB_TO_SIDE = {v: k for k, v in SIDE_TO_PB.items()}
TOKEN_TO_VENUE = {v.value: v for v in Venue}


def venue_from_subject(subject: str) -> Venue:
    """md.raw.<venue>.<symbol> -> venue (UNSPECIFIED when the token is unknown)."""
    parts = subject.split(".")
    return TOKEN_TO_VENUE.get(parts[2], Venue.UNSPECIFIED) if len(parts) >= 4 else Venue.UNSPECIFIED


def symbol_from_subject(subject: str) -> str:
    parts = subject.split(".")
    return parts[3] if len(parts) >= 4 else ""


def decode_raw(data: bytes, subject: str, now_ns: int) -> RawMessage:
    """The envelope; the subject fills in venue/symbol when the envelope leaves them out."""
    try:
        pb = events_pb2.RawMarketData.FromString(data)
    except DecodeError as exc:
        raise MalformedMessage(f"not a RawMarketData: {exc}") from exc
    venue = PB_TO_VENUE.get(pb.venue, Venue.UNSPECIFIED)
    if venue is Venue.UNSPECIFIED:
        venue = venue_from_subject(subject)
    return RawMessage(
        venue=venue,
        symbol=pb.symbol or symbol_from_subject(subject),
        format=PayloadFormat(pb.format) if pb.format in (0, 1, 2) else PayloadFormat.UNSPECIFIED,
        payload_type=pb.payload_type,
        payload=pb.payload,
        venue_sequence=pb.venue_sequence,
        receive_time_ns=pb.receive_time_ns or now_ns,
    )


def _prism_level(pb: feed_pb2.PrismBookLevel) -> PrismLevel:
    return PrismLevel(pb.price_ticks, pb.quantity_lots, pb.order_count)


def decode_prism(payload: bytes) -> PrismMessage:
    try:
        pb = feed_pb2.PrismFeedMessage.FromString(payload)
    except DecodeError as exc:
        raise MalformedMessage(f"not a PrismFeedMessage: {exc}") from exc
    which = pb.WhichOneof("body")
    body: PrismLevelUpdate | PrismTrade | PrismBookImage | None = None
    if which == "level_update":
        lu = pb.level_update
        body = PrismLevelUpdate(
            PB_TO_SIDE.get(lu.side, Side.UNSPECIFIED), PrismLevel(lu.price_ticks, lu.quantity_lots, lu.order_count)
        )
    elif which == "trade":
        t = pb.trade
        body = PrismTrade(
            t.trade_id, t.price_ticks, t.quantity_lots, PB_TO_SIDE.get(t.aggressor_side, Side.UNSPECIFIED)
        )
    elif which == "book_image":
        img = pb.book_image
        body = PrismBookImage(tuple(map(_prism_level, img.bids)), tuple(map(_prism_level, img.asks)))
    return PrismMessage(pb.symbol, pb.sequence, pb.exchange_time_ns, body)


def _dec(value: Decimal) -> decimal_pb2.Decimal:
    return decimal_pb2.Decimal(value=decimal_text(value))


def _level(level: Level) -> market_data_pb2.BookLevel:
    return market_data_pb2.BookLevel(
        price=_dec(level.price), quantity=_dec(level.quantity), order_count=level.order_count
    )


def event_pb(event: Event, publish_time_ns: int) -> events_pb2.MarketDataEvent:
    p = event.payload
    out = events_pb2.MarketDataEvent(event_id=event.event_id, publish_time_ns=publish_time_ns)
    if isinstance(p, Quote):
        q = out.quote
        q.symbol, q.venue, q.sequence = p.symbol, VENUE_TO_PB[p.venue], p.sequence
        q.event_time_ns, q.receive_time_ns = p.event_time_ns, p.receive_time_ns
        if p.bid is not None:
            q.bid_price.value, q.bid_size.value = decimal_text(p.bid.price), decimal_text(p.bid.quantity)
        if p.ask is not None:
            q.ask_price.value, q.ask_size.value = decimal_text(p.ask.price), decimal_text(p.ask.quantity)
    elif isinstance(p, Trade):
        out.trade.CopyFrom(
            market_data_pb2.Trade(
                symbol=p.symbol,
                venue=VENUE_TO_PB[p.venue],
                trade_id=p.trade_id,
                price=_dec(p.price),
                quantity=_dec(p.quantity),
                aggressor_side=SIDE_TO_PB[p.aggressor_side],
                sequence=p.sequence,
                event_time_ns=p.event_time_ns,
                receive_time_ns=p.receive_time_ns,
            )
        )
    elif isinstance(p, BookDelta):
        out.book_delta.CopyFrom(
            market_data_pb2.BookDelta(
                symbol=p.symbol,
                venue=VENUE_TO_PB[p.venue],
                bids=[_level(lvl) for lvl in p.bids],
                asks=[_level(lvl) for lvl in p.asks],
                sequence=p.sequence,
                previous_sequence=p.previous_sequence,
                event_time_ns=p.event_time_ns,
                receive_time_ns=p.receive_time_ns,
            )
        )
    elif isinstance(p, BookSnapshot):
        out.book_snapshot.CopyFrom(
            market_data_pb2.BookSnapshot(
                symbol=p.symbol,
                venue=VENUE_TO_PB[p.venue],
                bids=[_level(lvl) for lvl in p.bids],
                asks=[_level(lvl) for lvl in p.asks],
                depth=p.depth,
                sequence=p.sequence,
                event_time_ns=p.event_time_ns,
                receive_time_ns=p.receive_time_ns,
            )
        )
    return out


def batch_bytes(events: Sequence[Event], publish_time_ns: int) -> bytes:
    """One MD message: a MarketDataBatch of events that share a subject."""
    return events_pb2.MarketDataBatch(events=[event_pb(e, publish_time_ns) for e in events]).SerializeToString()


def _last_event(data: bytes) -> events_pb2.MarketDataEvent:
    """The last event of an MD message; MD keeps messages for 24 h, so a message stored before MarketDataBatch (a
    single MarketDataEvent) may still be the last of its subject."""
    with contextlib.suppress(DecodeError):
        events = events_pb2.MarketDataBatch.FromString(data).events
        if events and events[-1].WhichOneof("payload"):
            return events[-1]
    try:
        return events_pb2.MarketDataEvent.FromString(data)
    except DecodeError:
        return events_pb2.MarketDataEvent()


def sequence_of(data: bytes) -> tuple[str, int, Venue]:
    """(kind, canonical sequence, venue) of the last event of a published MarketDataBatch (to resume after a
    restart)."""
    pb = _last_event(data)
    which = pb.WhichOneof("payload")
    if which == "quote":
        return "quote", pb.quote.sequence, PB_TO_VENUE.get(pb.quote.venue, Venue.UNSPECIFIED)
    if which == "trade":
        return "trade", pb.trade.sequence, PB_TO_VENUE.get(pb.trade.venue, Venue.UNSPECIFIED)
    if which == "book_delta":
        return "book", pb.book_delta.sequence, PB_TO_VENUE.get(pb.book_delta.venue, Venue.UNSPECIFIED)
    if which == "book_snapshot":
        return "book", pb.book_snapshot.sequence, PB_TO_VENUE.get(pb.book_snapshot.venue, Venue.UNSPECIFIED)
    return "", 0, Venue.UNSPECIFIED


def resume_sequences(last_messages: list[bytes]) -> tuple[Sequences, Venue]:
    seq = Sequences()
    venue = Venue.UNSPECIFIED
    for data in last_messages:
        kind, n, v = sequence_of(data)
        if kind:
            setattr(seq, kind, max(getattr(seq, kind), n))
            venue = v if v is not Venue.UNSPECIFIED else venue
    return seq, venue
