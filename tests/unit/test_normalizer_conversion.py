"""Venue-native messages (PRISM protobuf, Binance JSON) become canonical events; bad input is counted, not fatal."""

from __future__ import annotations

import json
from decimal import Decimal

from trade.normalizer.v1 import events_pb2
from trade.prism.v1 import feed_pb2
from trade.type.v1 import order_pb2

from services.normalizer.adapters.codec import decode_prism, event_pb, resume_sequences
from services.normalizer.adapters.nats_md import md_messages
from services.normalizer.domain.model import (
    BookDelta,
    BookSnapshot,
    Instrument,
    PayloadFormat,
    Quote,
    RawMessage,
    Side,
    Trade,
    Venue,
)
from services.normalizer.domain.normalizer import Normalizer

BTC = Instrument("BTCUSDT", Decimal("0.01"), Decimal("0.00001"))
T0 = 1_700_000_000_000_000_000


def normalizer() -> Normalizer:
    return Normalizer([BTC], decode_prism, T0)


def prism(seq: int, **body: object) -> RawMessage:
    msg = feed_pb2.PrismFeedMessage(symbol="BTCUSDT", sequence=seq, exchange_time_ns=T0 + seq, **body)  # type: ignore[arg-type]
    return RawMessage(
        Venue.PRISM,
        "BTCUSDT",
        PayloadFormat.PROTOBUF,
        "trade.prism.v1.PrismFeedMessage",
        msg.SerializeToString(),
        seq,
        T0 + seq + 10,
    )


def image(seq: int, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> RawMessage:
    return prism(
        seq,
        book_image=feed_pb2.PrismBookImage(
            bids=[feed_pb2.PrismBookLevel(price_ticks=p, quantity_lots=q, order_count=1) for p, q in bids],
            asks=[feed_pb2.PrismBookLevel(price_ticks=p, quantity_lots=q, order_count=1) for p, q in asks],
        ),
    )


def level(seq: int, side: int, price: int, qty: int) -> RawMessage:
    return prism(seq, level_update=feed_pb2.PrismLevelUpdate(side=side, price_ticks=price, quantity_lots=qty))  # type: ignore[arg-type]


def binance(payload: object, recv: int = T0) -> RawMessage:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return RawMessage(Venue.BINANCE_SPOT, "BTCUSDT", PayloadFormat.JSON, "", data, 0, recv)


def test_prism_book_image_becomes_a_snapshot_and_a_quote_in_decimal_units() -> None:
    n = normalizer()
    out = n.handle(image(1, [(6_000_000, 50_000)], [(6_000_001, 1)]))
    snap, quote = (e.payload for e in out.events)
    assert isinstance(snap, BookSnapshot) and isinstance(quote, Quote)
    assert (snap.bids[0].price, snap.bids[0].quantity) == (Decimal("60000"), Decimal("0.5"))
    assert snap.asks[0].price == Decimal("60000.01") and snap.sequence == 1
    assert quote.bid is not None and quote.bid.price == Decimal("60000") and quote.sequence == 1
    assert [e.subject for e in out.events] == ["md.book.BTCUSDT", "md.quote.BTCUSDT"]
    assert out.events[0].event_id == "snapshot:BTCUSDT:1"


def test_prism_level_updates_are_sequenced_deltas_and_top_changes_emit_quotes() -> None:
    n = normalizer()
    n.handle(image(1, [(100, 1)], [(200, 1)]))
    out = n.handle(level(2, order_pb2.SIDE_BUY, 150, 3))
    delta, quote = (e.payload for e in out.events)
    assert isinstance(delta, BookDelta) and (delta.sequence, delta.previous_sequence) == (2, 1)
    assert isinstance(quote, Quote) and quote.bid is not None and quote.bid.price == Decimal("1.5")
    out = n.handle(level(3, order_pb2.SIDE_BUY, 50, 1))  # below the top: a delta, no quote
    assert [type(e.payload) for e in out.events] == [BookDelta]
    assert out.events[0].event_id == "book:BTCUSDT:3"


def test_prism_trade_keeps_venue_and_receive_times() -> None:
    n = normalizer()
    out = n.handle(
        prism(
            1,
            trade=feed_pb2.PrismTrade(
                trade_id=7, price_ticks=6_000_012, quantity_lots=3, aggressor_side=order_pb2.SIDE_SELL
            ),
        )
    )
    (trade,) = (e.payload for e in out.events)
    assert isinstance(trade, Trade)
    assert (trade.price, trade.quantity, trade.aggressor_side) == (Decimal("60000.12"), Decimal("0.00003"), Side.SELL)
    assert (trade.event_time_ns, trade.receive_time_ns, trade.sequence) == (T0 + 1, T0 + 11, 1)


def test_prism_sequence_gap_suppresses_deltas_until_the_next_image_which_jumps_the_book_sequence() -> None:
    n = normalizer()
    n.handle(image(1, [(100, 1)], [(200, 1)]))
    out = n.handle(level(5, order_pb2.SIDE_BUY, 101, 1))  # 2..4 missing
    assert out.gap and out.events == []
    assert n.handle(level(6, order_pb2.SIDE_BUY, 102, 1)).events == []
    out = n.handle(image(7, [(102, 1)], [(200, 1)]))
    snap = out.events[0].payload
    assert isinstance(snap, BookSnapshot) and snap.sequence == 2  # re-synchronization point: next book sequence
    assert n.venues[Venue.PRISM].gaps == 1


def test_prism_duplicate_sequence_is_counted_and_dropped() -> None:
    n = normalizer()
    n.handle(image(1, [(100, 1)], [(200, 1)]))
    assert n.handle(image(1, [(100, 1)], [(200, 1)])).duplicate
    assert n.venues[Venue.PRISM].duplicates == 1


def test_malformed_prism_payloads_are_counted_per_venue_and_change_nothing() -> None:
    n = normalizer()
    bad_bytes = RawMessage(Venue.PRISM, "BTCUSDT", PayloadFormat.PROTOBUF, "", b"\xff\xff\xff", 1, T0)
    assert n.handle(bad_bytes).error
    assert n.handle(prism(1)).error  # no body
    assert n.handle(prism(2, trade=feed_pb2.PrismTrade(trade_id=1, price_ticks=-5, quantity_lots=1))).error
    unknown = RawMessage(Venue.PRISM, "DOGEUSDT", PayloadFormat.PROTOBUF, "", prism(3).payload, 3, T0)
    assert n.handle(unknown).error  # no tick/lot size for it
    assert n.venues[Venue.PRISM].malformed == 4
    assert n.handle(image(1, [(100, 1)], [(200, 1)])).events  # the stream goes on


def test_binance_trade_maps_buyer_maker_to_a_selling_aggressor() -> None:
    n = normalizer()
    out = n.handle(
        binance(
            {
                "e": "trade",
                "E": 1,
                "s": "BTCUSDT",
                "t": 12345,
                "p": "60000.10000000",
                "q": "0.00100000",
                "T": 1_700_000_000_123,
                "m": True,
                "M": True,
            }
        )
    )
    (trade,) = (e.payload for e in out.events)
    assert isinstance(trade, Trade)
    assert (str(trade.price), str(trade.quantity), trade.aggressor_side) == ("60000.1", "0.001", Side.SELL)
    assert trade.event_time_ns == 1_700_000_000_123_000_000 and trade.trade_id == "12345"
    assert n.handle(binance({"e": "trade", "t": 12345, "p": "1", "q": "1", "T": 1, "m": False})).duplicate


def test_binance_book_ticker_in_a_combined_stream_becomes_a_quote() -> None:
    n = normalizer()
    frame = {
        "stream": "btcusdt@bookTicker",
        "data": {
            "u": 400900217,
            "s": "BTCUSDT",
            "b": "25.35190000",
            "B": "31.21000000",
            "a": "25.36520000",
            "A": "40.66000000",
        },
    }
    (quote,) = (e.payload for e in n.handle(binance(frame)).events)
    assert isinstance(quote, Quote) and quote.bid is not None and quote.ask is not None
    assert (str(quote.bid.price), str(quote.ask.quantity)) == ("25.3519", "40.66")


def test_binance_depth_syncs_from_the_rest_snapshot_and_detects_a_gap() -> None:
    n = normalizer()
    assert (
        n.handle(binance({"e": "depthUpdate", "E": 1, "s": "BTCUSDT", "U": 90, "u": 95, "b": [], "a": []})).events == []
    )
    out = n.handle(binance({"lastUpdateId": 100, "bids": [["10.0", "1.0"]], "asks": [["11.0", "2.0"]]}))
    assert isinstance(out.events[0].payload, BookSnapshot)
    assert n.handle(binance({"e": "depthUpdate", "E": 1, "U": 95, "u": 100, "b": [], "a": []})).duplicate
    out = n.handle(binance({"e": "depthUpdate", "E": 2, "U": 99, "u": 102, "b": [["10.0", "0"]], "a": []}))
    delta = out.events[0].payload
    assert isinstance(delta, BookDelta) and delta.bids[0].quantity == 0 and delta.previous_sequence == 1
    out = n.handle(binance({"e": "depthUpdate", "E": 3, "U": 110, "u": 111, "b": [], "a": []}))  # 103..109 missed
    assert out.gap and out.events == []
    out = n.handle(binance({"lastUpdateId": 120, "bids": [], "asks": [["11.0", "2.0"]]}))
    assert isinstance(out.events[0].payload, BookSnapshot) and out.events[0].payload.sequence == 3


def test_malformed_binance_messages_are_counted_and_skipped() -> None:
    n = normalizer()
    for bad in (
        b"{not json",
        b"[1,2]",
        {"e": "trade", "t": "x"},
        {"e": "kline"},
        {"e": "trade", "t": 1, "p": "NaN", "q": "1", "m": True},
        {"e": "depthUpdate", "U": 5, "u": 4, "b": [], "a": []},
    ):
        assert n.handle(binance(bad)).error
    assert n.venues[Venue.BINANCE_SPOT].malformed == 6
    feed = n.feeds(T0)[0]
    assert feed.status == "error" and feed.counters.malformed == 6


def test_canonical_events_serialize_with_normalized_decimals_and_deterministic_ids() -> None:
    n = normalizer()
    out = n.handle(image(1, [(6_000_000, 50_000)], [(6_000_001, 100_000)]))
    pb = events_pb2.MarketDataEvent.FromString(event_pb(out.events[0], 5).SerializeToString())
    assert pb.event_id == "snapshot:BTCUSDT:1" and pb.publish_time_ns == 5
    assert (pb.book_snapshot.bids[0].price.value, pb.book_snapshot.asks[0].quantity.value) == ("60000", "1")


def test_a_batch_goes_out_as_one_md_message_per_subject_in_order_and_resumes_from_each_last_event() -> None:
    n = normalizer()
    events = n.handle(image(1, [(100, 1)], [(200, 1)])).events
    for seq, price in ((2, 150), (3, 160), (4, 170)):
        events += n.handle(level(seq, order_pb2.SIDE_BUY, price, 1)).events
    messages = md_messages(events, 7, max_events=3)
    assert [(subject, msg_id) for subject, _, msg_id in messages] == [
        ("md.book.BTCUSDT", "snapshot:BTCUSDT:1+3"),
        ("md.book.BTCUSDT", "book:BTCUSDT:4+1"),
        ("md.quote.BTCUSDT", "quote:BTCUSDT:1+3"),
        ("md.quote.BTCUSDT", "quote:BTCUSDT:4+1"),
    ]
    decoded = [list(events_pb2.MarketDataBatch.FromString(data).events) for _, data, _ in messages]
    assert [e.event_id for e in decoded[0] + decoded[1]] == [
        "snapshot:BTCUSDT:1",
        "book:BTCUSDT:2",
        "book:BTCUSDT:3",
        "book:BTCUSDT:4",
    ]
    assert all(e.publish_time_ns == 7 for batch in decoded for e in batch)
    sequences, venue = resume_sequences([data for _, data, _ in messages])
    assert (sequences.book, sequences.quote, sequences.trade, venue) == (4, 4, 0, Venue.PRISM)


def test_resume_reads_a_last_message_stored_before_md_batches_as_a_single_event() -> None:
    n = normalizer()
    n.handle(image(1, [(100, 1)], [(200, 1)]))
    n.handle(level(2, order_pb2.SIDE_BUY, 150, 1))
    (snapshot, quote) = n.handle(image(9, [(100, 1)], [(200, 1)])).events
    assert (snapshot.payload.sequence, quote.payload.sequence) == (3, 3)
    legacy = [event_pb(snapshot, 1).SerializeToString(), event_pb(quote, 1).SerializeToString()]
    sequences, venue = resume_sequences([*legacy, b"\x00garbage"])
    assert (sequences.book, sequences.quote, venue) == (3, 3, Venue.PRISM)
