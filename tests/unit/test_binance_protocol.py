"""Parsing Binance spot frames and REST bodies from their documented formats; prices stay exact decimals."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from services.feeds.binance.protocol import (
    BookTicker,
    DepthUpdate,
    ProtocolError,
    Trade,
    combined_stream_url,
    parse_depth_snapshot,
    parse_frame,
)

TRADE = (
    b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1764108000007,"s":"BTCUSDT","t":3000001,'
    b'"p":"65000.50000000","q":"0.09219700","T":1764108000006,"m":false,"M":true}}'
)
BOOK_TICKER = (
    b'{"stream":"btcusdt@bookTicker","data":{"u":400900217,"s":"BTCUSDT","b":"64999.50000000",'
    b'"B":"1.43606000","a":"65000.50000000","A":"1.17875000"}}'
)
DEPTH = (
    b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1764108000000,"s":"BTCUSDT","U":157,"u":160,'
    b'"b":[["0.0024","10"]],"a":[["0.0026","100"],["0.0027","0.00000000"]]}}'
)


def test_trade_frame_parses_every_documented_field_and_keeps_the_raw_bytes() -> None:
    frame = parse_frame(TRADE)
    assert frame.event == Trade(
        symbol="BTCUSDT",
        trade_id=3000001,
        price=Decimal("65000.50000000"),
        quantity=Decimal("0.09219700"),
        event_time_ms=1764108000007,
        trade_time_ms=1764108000006,
        buyer_is_maker=False,
    )
    assert frame.raw == TRADE
    assert (frame.kind, frame.venue_sequence, frame.symbol) == ("trade", 3000001, "BTCUSDT")


def test_book_ticker_frame_is_recognised_by_its_stream_and_sequenced_by_update_id() -> None:
    frame = parse_frame(BOOK_TICKER)
    assert isinstance(frame.event, BookTicker)
    assert frame.event.bid_price == Decimal("64999.5") and frame.event.ask_quantity == Decimal("1.17875")
    assert (frame.kind, frame.venue_sequence) == ("bookTicker", 400900217)


def test_depth_frame_carries_first_and_final_update_ids_and_zero_quantities() -> None:
    frame = parse_frame(DEPTH)
    assert isinstance(frame.event, DepthUpdate)
    assert (frame.event.first_update_id, frame.event.final_update_id) == (157, 160)
    assert frame.event.bids == ((Decimal("0.0024"), Decimal("10")),)
    assert frame.event.asks[1] == (Decimal("0.0027"), Decimal(0))
    assert (frame.kind, frame.venue_sequence) == ("depth", 160)


def test_prices_are_exact_decimals_not_floats() -> None:
    frame = parse_frame(
        TRADE.replace(b'"p":"65000.50000000"', b'"p":"0.10000000"').replace(b'"q":"0.09219700"', b'"q":"0.2"')
    )
    assert isinstance(frame.event, Trade)
    assert frame.event.price + frame.event.quantity == Decimal("0.3")


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"data":{}}',
        b'{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT"}}',
        TRADE.replace(b'"p":"65000.50000000"', b'"p":65000.5'),
        TRADE.replace(b'"t":3000001', b'"t":"3000001"'),
        TRADE.replace(b'"p":"65000.50000000"', b'"p":"NaN"'),
        DEPTH.replace(b'"U":157', b'"U":161'),
        DEPTH.replace(b'[["0.0024","10"]]', b'[["0.0024"]]'),
        b'{"stream":"btcusdt@kline_1m","data":{"e":"kline"}}',
    ],
)
def test_malformed_frames_raise_protocol_error(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_frame(raw)


def test_rest_depth_snapshot_parses_last_update_id_and_levels() -> None:
    body = json.dumps({"lastUpdateId": 1027024, "bids": [["4.00000000", "431.00000000"]], "asks": []})
    snapshot = parse_depth_snapshot("BNBBTC", body)
    assert snapshot.last_update_id == 1027024
    assert snapshot.bids == ((Decimal("4"), Decimal("431")),) and snapshot.asks == ()


def test_combined_stream_url_lists_trade_book_ticker_and_depth_per_symbol_in_lower_case() -> None:
    url = combined_stream_url("wss://stream.binance.com:9443/", ["BTCUSDT", "ETHUSDT"])
    assert url == (
        "wss://stream.binance.com:9443/stream?streams="
        "btcusdt@trade/btcusdt@bookTicker/btcusdt@depth@100ms/ethusdt@trade/ethusdt@bookTicker/ethusdt@depth@100ms"
    )
