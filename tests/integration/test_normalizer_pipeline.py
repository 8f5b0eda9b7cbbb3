"""Raw venue messages published to NATS come out canonical on md.{quote,trade,book}.<symbol> (real NATS)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest
from nats.aio.msg import Msg
from trade.normalizer.v1 import events_pb2, normalizer_pb2, normalizer_pb2_grpc
from trade.prism.v1 import feed_pb2
from trade.type.v1 import order_pb2, venue_pb2

from mesh.ports import load_ports
from services.normalizer.bootstrap import build
from services.normalizer.settings import InstrumentScale, NormalizerSettings
from services.runtime.bus import Bus, StreamSpec
from services.runtime.server import start_server
from tests.support.marketdata import md_events

pytestmark = pytest.mark.usefixtures("mesh")
JSON = events_pb2.RAW_PAYLOAD_FORMAT_JSON


def collector(got: list[events_pb2.MarketDataEvent]) -> Callable[[Msg], Awaitable[None]]:
    async def on_msg(msg: Msg) -> None:
        got.extend(md_events(msg.data))

    return on_msg


@pytest.fixture
async def bus() -> AsyncIterator[Bus]:
    bus = Bus(NormalizerSettings().nats_url, "test-normalizer")
    await bus.connect()
    yield bus
    await bus.close()


def raw(
    venue: venue_pb2.Venue.ValueType,
    symbol: str,
    payload: bytes,
    fmt: events_pb2.RawPayloadFormat.ValueType,
    seq: int = 0,
    payload_type: str = "",
) -> bytes:
    return events_pb2.RawMarketData(
        venue=venue,
        symbol=symbol,
        format=fmt,
        payload=payload,
        venue_sequence=seq,
        payload_type=payload_type,
        receive_time_ns=time.time_ns(),
    ).SerializeToString()


async def test_prism_messages_become_canonical_books_quotes_and_trades(bus: Bus) -> None:
    tag = uuid.uuid4().hex[:8].upper()
    symbol = f"TST{tag}"
    stream = StreamSpec(name=f"TEST_RAW_{tag}", subjects=(f"mdt{tag.lower()}.raw.>",), duplicate_window_s=60)
    await bus.ensure_streams([stream])
    settings = NormalizerSettings(
        port=0,
        durable=f"test-{tag}",
        raw_stream=stream.name,
        raw_subject=f"mdt{tag.lower()}.raw.>",
        instruments=[InstrumentScale(symbol=symbol, tick_size="0.01", lot_size="0.001")],
        log_json=False,
    )
    server = await start_server(settings, await build(settings))
    got: list[events_pb2.MarketDataEvent] = []
    sub = await bus.js.subscribe(f"md.*.{symbol}", cb=collector(got), ordered_consumer=True)
    try:
        msgs = [
            feed_pb2.PrismFeedMessage(
                symbol=symbol,
                sequence=1,
                exchange_time_ns=1,
                book_image=feed_pb2.PrismBookImage(
                    bids=[feed_pb2.PrismBookLevel(price_ticks=10000, quantity_lots=1500)],
                    asks=[feed_pb2.PrismBookLevel(price_ticks=10001, quantity_lots=2)],
                ),
            ),
            feed_pb2.PrismFeedMessage(
                symbol=symbol,
                sequence=2,
                exchange_time_ns=2,
                level_update=feed_pb2.PrismLevelUpdate(side=order_pb2.SIDE_BUY, price_ticks=10000, quantity_lots=0),
            ),
            feed_pb2.PrismFeedMessage(
                symbol=symbol,
                sequence=3,
                exchange_time_ns=3,
                trade=feed_pb2.PrismTrade(
                    trade_id=9, price_ticks=10001, quantity_lots=2, aggressor_side=order_pb2.SIDE_BUY
                ),
            ),
        ]
        subject = f"mdt{tag.lower()}.raw.prism.{symbol}"
        await bus.publish(subject, b"\x00garbage")  # malformed: counted, acknowledged, the stream goes on
        for m in msgs:
            await bus.publish(
                subject,
                raw(
                    venue_pb2.VENUE_PRISM,
                    symbol,
                    m.SerializeToString(),
                    events_pb2.RAW_PAYLOAD_FORMAT_PROTOBUF,
                    m.sequence,
                    "trade.prism.v1.PrismFeedMessage",
                ),
            )
        deadline = time.monotonic() + 10
        while len(got) < 5 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        # each subject in order (the events of one raw batch go out grouped per subject)
        books = [e for e in got if e.WhichOneof("payload") in ("book_snapshot", "book_delta")]
        quotes = [e for e in got if e.WhichOneof("payload") == "quote"]
        trades = [e for e in got if e.WhichOneof("payload") == "trade"]
        assert [e.WhichOneof("payload") for e in books] == ["book_snapshot", "book_delta"]
        assert (len(quotes), len(trades), len(got)) == (2, 1, 5)
        (snap, delta), quote, (trade,) = books, quotes[1], trades
        assert snap.book_snapshot.bids[0].price.value == "100" and snap.book_snapshot.bids[0].quantity.value == "1.5"
        assert (delta.book_delta.sequence, delta.book_delta.previous_sequence) == (2, 1)
        assert not quote.quote.HasField("bid_price") and quote.quote.ask_price.value == "100.01"
        assert (trade.trade.price.value, trade.trade.quantity.value, trade.event_id) == (
            "100.01",
            "0.002",
            f"trade:{symbol}:1",
        )
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stats = await normalizer_pb2_grpc.NormalizerServiceStub(channel).GetStats(normalizer_pb2.GetStatsRequest())
        (prism,) = stats.venues
        assert (prism.messages_in, prism.messages_out, prism.malformed_count) == (4, 5, 1)
    finally:
        await sub.unsubscribe()
        await server.stop()
        await bus.js.delete_stream(stream.name)


async def test_the_running_normalizer_turns_binance_json_into_canonical_trades_and_counts_garbage(bus: Bus) -> None:
    symbol = f"TSB{uuid.uuid4().hex[:8].upper()}"
    got: list[events_pb2.MarketDataEvent] = []
    sub = await bus.js.subscribe(f"md.*.{symbol}", cb=collector(got), ordered_consumer=True)
    subject = f"md.raw.binance_spot.{symbol}"
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{load_ports().service('normalizer')}")
    stub = normalizer_pb2_grpc.NormalizerServiceStub(channel)
    try:
        await bus.publish(subject, raw(venue_pb2.VENUE_BINANCE_SPOT, symbol, b"{broken", JSON))
        for t in (1, 2):
            frame = {
                "e": "trade",
                "E": 1,
                "s": symbol,
                "t": t,
                "p": "0.0010",
                "q": "100",
                "T": 1700000000000,
                "m": False,
            }
            await bus.publish(subject, raw(venue_pb2.VENUE_BINANCE_SPOT, symbol, json.dumps(frame).encode(), JSON, t))
        ticker = {"u": 5, "s": symbol, "b": "0.0009", "B": "1", "a": "0.0011", "A": "2"}
        await bus.publish(subject, raw(venue_pb2.VENUE_BINANCE_SPOT, symbol, json.dumps(ticker).encode(), JSON))
        deadline = time.monotonic() + 10
        while len(got) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert [e.event_id for e in got] == [f"trade:{symbol}:1", f"trade:{symbol}:2", f"quote:{symbol}:1"]
        assert got[0].trade.aggressor_side == order_pb2.SIDE_BUY and got[0].trade.price.value == "0.001"
        feeds = await stub.ListFeeds(normalizer_pb2.ListFeedsRequest(venue=venue_pb2.VENUE_BINANCE_SPOT), timeout=5)
        (feed,) = [f for f in feeds.feeds if f.symbol == symbol]
        assert (feed.messages_in, feed.malformed_count, feed.status) == (4, 1, normalizer_pb2.FEED_STATUS_ACTIVE)
    finally:
        await sub.unsubscribe()
        await channel.close()
