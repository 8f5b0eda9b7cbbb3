"""Binance spot adapter pieces: request signing (the documented example), order parameters, executionReport parsing."""

from __future__ import annotations

import json
import urllib.parse
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services.live_gateway.adapters.binance import (
    error_reason,
    order_params,
    parse_execution_report,
    sign,
    signed_query,
)
from services.live_gateway.domain.ids import fill_id, report_id
from services.live_gateway.domain.model import (
    ExecType,
    Liquidity,
    OrderSpec,
    OrderStatus,
    OrderType,
    PlaceOrder,
    Side,
    TimeInForce,
    Venue,
    VenueRejected,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "live_gateway" / "binance"
D = Decimal

# Binance spot API docs, "SIGNED endpoint examples for POST /api/v3/order - HMAC Keys".
DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
DOC_QUERY = (
    "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
)
DOC_SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"


def fixture(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return doc


def test_signature_of_the_documented_example() -> None:
    assert sign(DOC_SECRET, DOC_QUERY) == DOC_SIGNATURE


def test_signed_query_appends_recv_window_timestamp_and_signature() -> None:
    params = [
        ("symbol", "LTCBTC"),
        ("side", "BUY"),
        ("type", "LIMIT"),
        ("timeInForce", "GTC"),
        ("quantity", "1"),
        ("price", "0.1"),
    ]
    assert signed_query(params, DOC_SECRET, 1499827319559, 5000) == f"{DOC_QUERY}&signature={DOC_SIGNATURE}"


def order(spec: OrderSpec) -> PlaceOrder:
    return PlaceOrder("acc-1", "LTCBTC", Venue.BINANCE_SPOT, "01HXYZORDER", "client", spec)


def test_limit_order_parameters_carry_the_oms_order_id_as_new_client_order_id() -> None:
    params = dict(order_params(order(OrderSpec(Side.BUY, OrderType.LIMIT, D("1.000"), D("0.10")))))
    assert params == {
        "symbol": "LTCBTC",
        "side": "BUY",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": "1",
        "price": "0.1",
        "newClientOrderId": "01HXYZORDER",
        "newOrderRespType": "RESULT",
    }


def test_post_only_market_and_stop_orders_map_to_binance_types() -> None:
    post = dict(order_params(order(OrderSpec(Side.SELL, OrderType.LIMIT, D(1), D(2), post_only=True))))
    assert post["type"] == "LIMIT_MAKER" and "timeInForce" not in post
    market = dict(order_params(order(OrderSpec(Side.BUY, OrderType.MARKET, D(1), time_in_force=TimeInForce.IOC))))
    assert market["type"] == "MARKET" and "price" not in market
    stop = OrderSpec(Side.SELL, OrderType.STOP_LIMIT, D(1), D(9), D(10), TimeInForce.GTC)
    assert dict(order_params(order(stop)))["stopPrice"] == "10"


def test_gtd_orders_are_rejected_as_not_supported() -> None:
    spec = OrderSpec(Side.BUY, OrderType.LIMIT, D(1), D(1), time_in_force=TimeInForce.GTD, expire_time_ns=5)
    with pytest.raises(VenueRejected) as err:
        order_params(order(spec))
    assert err.value.reason == "NOT_SUPPORTED"


def test_documented_new_execution_report() -> None:
    ex = parse_execution_report(fixture("execution_report_new.json"), "acc-1", 7)
    assert ex.exec_type == ExecType.NEW and ex.order_status == OrderStatus.NEW
    assert ex.order_id == "mUvoqJxFIILMdfAW5iGSOW" and ex.venue_order_id == "4293153"
    assert ex.symbol == "ETHBTC" and ex.side == Side.BUY
    assert ex.quantity == D(1) and ex.limit_price == D("0.10264410")
    assert ex.leaves_qty == D(1) and ex.avg_price is None and ex.last_price is None
    assert ex.event_time_ns == 1499405658657 * 1_000_000 and ex.receive_time_ns == 7
    assert report_id(ex) == "binance_spot:acc-1:4293153:8641984"


def test_partial_then_full_fill_reports() -> None:
    partial = parse_execution_report(fixture("execution_report_trade_partial.json"), "acc-1", 7)
    full = parse_execution_report(fixture("execution_report_trade_full.json"), "acc-1", 8)
    assert partial.exec_type == ExecType.TRADE and partial.order_status == OrderStatus.PARTIALLY_FILLED
    assert partial.last_quantity == D("0.4") and partial.last_price == D("0.10264410")
    assert partial.cum_qty == D("0.4") and partial.leaves_qty == D("0.6")
    assert partial.fee == D("0.00000041") and partial.fee_currency == "BNB"
    assert partial.liquidity == Liquidity.MAKER
    assert fill_id(partial) == "binance_spot:77001:4293153"
    assert full.order_status == OrderStatus.FILLED and full.leaves_qty == D(0)
    assert full.avg_price == D("0.10264410")
    assert fill_id(full) != fill_id(partial) and report_id(full) != report_id(partial)


def test_cancel_report_names_the_original_client_order_id() -> None:
    event = dict(fixture("execution_report_new.json"), x="CANCELED", X="CANCELED", c="cancelReq1", C="myOrder1")
    ex = parse_execution_report(event, "acc-1", 1)
    assert ex.order_id == "myOrder1" and ex.exec_type == ExecType.CANCELED and ex.leaves_qty == D(0)


def test_error_codes_map_to_reasons() -> None:
    insufficient = fixture("error_insufficient_balance.json")
    assert error_reason(insufficient["code"], insufficient["msg"]) == "VENUE_REJECTED"
    assert error_reason(-1121, "Invalid symbol.") == "UNKNOWN_SYMBOL"
    assert error_reason(-2011, "Unknown order sent.") == "ORDER_NOT_FOUND"
    assert error_reason(-1013, "Filter failure: LOT_SIZE") == "INVALID_LOT_SIZE"
    assert error_reason(-2010, "Order would immediately match and take.") == "POST_ONLY_WOULD_TAKE"


def test_signature_covers_exactly_the_query_before_it() -> None:
    query = signed_query([("symbol", "BTCUSDT")], "s3cr3t", 1, 5000)
    payload, _, signature = query.rpartition("&signature=")
    assert sign("s3cr3t", payload) == signature
    assert urllib.parse.parse_qs(payload)["recvWindow"] == ["5000"]
