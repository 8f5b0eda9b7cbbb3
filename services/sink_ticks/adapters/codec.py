"""Canonical protobuf (MD messages: trade.normalizer.v1.MarketDataBatch of MarketDataEvent) -> tick rows; undecodable
input is counted and logged, not raised."""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal

import structlog
from google.protobuf.message import DecodeError
from trade.normalizer.v1 import events_pb2
from trade.type.v1 import decimal_pb2, market_data_pb2, order_pb2, venue_pb2

from services.sink_ticks.domain.model import QuoteRow, TickBatch, TradeRow

log = structlog.get_logger("sink_ticks.codec")

_MATCH = re.compile(r"-?[0-9]+(\.[0-9]{1,18})?").fullmatch


class MalformedEvent(ValueError):
    """An event that is not a valid canonical trade or quote."""


_VENUES: dict[int, str] = {number: name.removeprefix("VENUE_").lower() for name, number in venue_pb2.Venue.items()}


def venue_token(venue: int) -> str:
    """VENUE_BINANCE_SPOT -> "binance_spot" (the documented token form)."""
    return _VENUES.get(venue, "unspecified")


_SIDES: dict[int, str] = {order_pb2.SIDE_BUY: "buy", order_pb2.SIDE_SELL: "sell"}


def side_token(side: int) -> str:
    return _SIDES.get(side, "unspecified")


def parse_decimal(value: decimal_pb2.Decimal, field: str) -> Decimal:
    return _decimal(value.value, field)


def _optional(parent: market_data_pb2.Quote, field: str) -> Decimal | None:
    return parse_decimal(getattr(parent, field), field) if parent.HasField(field) else None  # type: ignore[arg-type]


# Prices sit on a tick grid and sizes repeat: most texts were seen a moment ago. Decimals are immutable, so one
# instance can serve every row; a lookup costs a tenth of validating and parsing the text again.
_DECIMALS: dict[str, Decimal] = {}
_DECIMALS_MAX = 100_000


def _decimal(text: str, field: str) -> Decimal:
    value = _DECIMALS.get(text)
    if value is None:
        if not _MATCH(text):
            raise MalformedEvent(f"{field}: not a decimal: {text!r}")
        if len(_DECIMALS) >= _DECIMALS_MAX:
            _DECIMALS.clear()
        value = _DECIMALS[text] = Decimal(text)
    return value


def trade_row(trade: market_data_pb2.Trade, publish_time_ns: int) -> TradeRow:
    # Each protobuf field read costs a lookup in the C message: read each once (this runs per tick).
    symbol, trade_id = trade.symbol, trade.trade_id
    if not symbol or not trade_id:
        raise MalformedEvent("trade without symbol or trade_id")
    if not trade.HasField("price") or not trade.HasField("quantity"):
        raise MalformedEvent("trade without price or quantity")
    return TradeRow(
        symbol,
        _VENUES.get(trade.venue, "unspecified"),
        trade_id,
        trade.sequence,
        _decimal(trade.price.value, "price"),
        _decimal(trade.quantity.value, "quantity"),
        _SIDES.get(trade.aggressor_side, "unspecified"),
        trade.event_time_ns,
        trade.receive_time_ns,
        publish_time_ns,
    )


def quote_row(quote: market_data_pb2.Quote, publish_time_ns: int) -> QuoteRow:
    if not quote.symbol:
        raise MalformedEvent("quote without symbol")
    return QuoteRow(
        symbol=quote.symbol,
        venue=venue_token(quote.venue),
        sequence=quote.sequence,
        bid_price=_optional(quote, "bid_price"),
        bid_size=_optional(quote, "bid_size"),
        ask_price=_optional(quote, "ask_price"),
        ask_size=_optional(quote, "ask_size"),
        event_time_ns=quote.event_time_ns,
        receive_time_ns=quote.receive_time_ns,
        publish_time_ns=publish_time_ns,
    )


def decode_batch(payloads: Iterable[bytes]) -> TickBatch:
    """Decode a JetStream batch of MD messages (each a MarketDataBatch: one or more events), every event in order.

    An undecodable or empty message counts once as malformed; so does each invalid event of a message, whose other
    events still become rows. Book events are not this sink's business and are skipped silently."""
    batch = TickBatch()
    trades, quotes = batch.trades.append, batch.quotes.append
    parse = events_pb2.MarketDataBatch.FromString  # a fresh message: cheaper than clearing and reusing one
    for payload in payloads:
        batch.messages += 1
        try:
            events = parse(payload).events
            if not events:
                raise MalformedEvent("message without events")
        except (DecodeError, MalformedEvent) as exc:
            batch.malformed += 1
            log.warning("sink_ticks.malformed_message", error=str(exc))
            continue
        for event in events:
            try:
                kind = event.WhichOneof("payload")
                if kind == "trade":
                    trades(trade_row(event.trade, event.publish_time_ns))
                elif kind == "quote":
                    quotes(quote_row(event.quote, event.publish_time_ns))
                elif kind is None:
                    raise MalformedEvent("event without payload")
            except MalformedEvent as exc:
                batch.malformed += 1
                log.warning("sink_ticks.malformed_event", event_id=event.event_id, error=str(exc))
    return batch
