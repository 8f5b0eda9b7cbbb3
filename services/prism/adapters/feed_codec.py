"""Feed messages -> trade.prism.v1.PrismFeedMessage inside a trade.normalizer.v1.RawMarketData envelope."""

from __future__ import annotations

from typing import cast

from trade.normalizer.v1 import events_pb2
from trade.prism.v1 import feed_pb2
from trade.type.v1 import order_pb2, venue_pb2

from services.prism.domain.feed import BookImage, FeedMessage, LevelUpdate, TradePrint

PAYLOAD_TYPE = feed_pb2.PrismFeedMessage.DESCRIPTOR.full_name  # "trade.prism.v1.PrismFeedMessage"
SUBJECT_PREFIX = "md.raw.prism."


def subject_for(symbol: str) -> str:
    """md.raw.prism.<SYMBOL> (stream MD_RAW)."""
    return SUBJECT_PREFIX + symbol


def msg_id_for(message: FeedMessage) -> str:
    """Nats-Msg-Id: "prism:<symbol>:<feed sequence>"."""
    return f"prism:{message.symbol}:{message.sequence}"


def to_proto(message: FeedMessage) -> feed_pb2.PrismFeedMessage:
    pb = feed_pb2.PrismFeedMessage(
        symbol=message.symbol, sequence=message.sequence, exchange_time_ns=message.exchange_time_ns
    )
    body = message.body
    if isinstance(body, LevelUpdate):
        lu = pb.level_update
        lu.side = cast("order_pb2.Side.ValueType", body.side)  # domain sides are trade.type.v1.Side numbers
        lu.price_ticks = body.price_ticks
        lu.quantity_lots = body.qty_lots
        lu.order_count = body.order_count
    elif isinstance(body, TradePrint):
        tr = pb.trade
        tr.trade_id = body.trade_id
        tr.price_ticks = body.price_ticks
        tr.quantity_lots = body.qty_lots
        tr.aggressor_side = cast("order_pb2.Side.ValueType", body.aggressor_side)
    elif isinstance(body, BookImage):
        image = pb.book_image
        image.SetInParent()  # an empty book is still an image
        for price, qty, count in body.bids:
            image.bids.add(price_ticks=price, quantity_lots=qty, order_count=count)
        for price, qty, count in body.asks:
            image.asks.add(price_ticks=price, quantity_lots=qty, order_count=count)
    return pb


def envelope(message: FeedMessage, receive_time_ns: int) -> bytes:
    """The RawMarketData bytes published on md.raw.prism.<symbol>."""
    return events_pb2.RawMarketData(
        venue=venue_pb2.VENUE_PRISM,
        symbol=message.symbol,
        format=events_pb2.RAW_PAYLOAD_FORMAT_PROTOBUF,
        payload_type=PAYLOAD_TYPE,
        payload=to_proto(message).SerializeToString(),
        venue_sequence=message.sequence,
        receive_time_ns=receive_time_ns,
    ).SerializeToString()


def sequence_of(raw_market_data: bytes) -> int:
    """The feed sequence of a published envelope (0 if it cannot be read)."""
    try:
        return int(events_pb2.RawMarketData.FromString(raw_market_data).venue_sequence)
    except Exception:
        return 0
