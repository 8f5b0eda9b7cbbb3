"""protobuf <-> domain translation of the live-gateway: specs, decimals, enums and reports."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from trade.live_gateway.v1 import events_pb2
from trade.type.v1 import decimal_pb2, errors_pb2, fill_pb2, order_pb2, venue_pb2

from services.live_gateway.adapters.codec import DECIMAL_RE, dec_str, report_pb, spec_from_pb, venue_from_pb
from services.live_gateway.domain.gateway import build_report
from services.live_gateway.domain.model import (
    ExecType,
    Liquidity,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    Venue,
    VenueExecution,
)
from services.runtime.errors import DomainError, ErrorKind


def test_unset_time_in_force_defaults_to_gtc_for_limits_and_ioc_for_markets() -> None:
    limit = spec_from_pb(
        order_pb2.OrderSpec(
            side=order_pb2.SIDE_SELL,
            order_type=order_pb2.ORDER_TYPE_LIMIT,
            quantity=decimal_pb2.Decimal(value="1.50"),
            limit_price=decimal_pb2.Decimal(value="100"),
        ),
        "spec",
    )
    assert (limit.side, limit.order_type, limit.time_in_force) == (Side.SELL, OrderType.LIMIT, TimeInForce.GTC)
    assert limit.quantity == Decimal("1.5") and limit.limit_price == Decimal(100)
    market = spec_from_pb(
        order_pb2.OrderSpec(
            side=order_pb2.SIDE_BUY, order_type=order_pb2.ORDER_TYPE_MARKET, quantity=decimal_pb2.Decimal(value="1")
        ),
        "spec",
    )
    assert market.time_in_force == TimeInForce.IOC and market.limit_price is None


def test_malformed_spec_names_each_bad_field() -> None:
    with pytest.raises(DomainError) as err:
        spec_from_pb(
            order_pb2.OrderSpec(quantity=decimal_pb2.Decimal(value="1e5"), limit_price=decimal_pb2.Decimal(value="")),
            "new_spec",
        )
    assert err.value.kind == ErrorKind.INVALID_ARGUMENT
    assert {v.field for v in err.value.violations} == {
        "new_spec.side",
        "new_spec.order_type",
        "new_spec.quantity",
        "new_spec.limit_price",
    }


def test_venue_tokens_follow_the_enum_names() -> None:
    assert venue_from_pb(venue_pb2.VENUE_BINANCE_SPOT) == Venue.BINANCE_SPOT
    assert venue_from_pb(venue_pb2.VENUE_PAPER) == Venue.PAPER
    assert venue_from_pb(venue_pb2.VENUE_UNSPECIFIED) is None


@given(st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**12), max_value=10**12, places=10))
def test_decimal_text_is_normalized_and_exact(value: Decimal) -> None:
    text = dec_str(value)
    assert DECIMAL_RE.match(text) and text != "-0"
    assert Decimal(text) == value
    assert not ("." in text and text.endswith("0"))


def test_trade_report_carries_its_fill_and_reason_enums() -> None:
    ex = VenueExecution(
        venue=Venue.PRISM,
        account_id="acc-1",
        symbol="BTCUSDT",
        order_id="ord-1",
        venue_order_id="V9",
        exec_id="E5",
        exec_type=ExecType.TRADE,
        order_status=OrderStatus.PARTIALLY_FILLED,
        side=Side.SELL,
        last_price=Decimal("101.250"),
        last_quantity=Decimal("0.5"),
        cum_qty=Decimal("0.5"),
        leaves_qty=Decimal("1.5"),
        fee=Decimal("0.01"),
        fee_currency="USDT",
        liquidity=Liquidity.TAKER,
        trade_id="T3",
        venue_sequence=5,
    )
    pb = report_pb(build_report(ex, None))
    assert pb.report_id == "prism:acc-1:E5" and pb.exec_type == events_pb2.EXEC_TYPE_TRADE
    assert pb.order_status == order_pb2.ORDER_STATUS_PARTIALLY_FILLED and pb.side == order_pb2.SIDE_SELL
    assert pb.quantity.value == "2"  # cum + leaves while working
    assert pb.last_price.value == "101.25" and pb.fill.price.value == "101.25"
    assert pb.fill.fill_id == "prism:T3:V9" and pb.fill.liquidity == fill_pb2.LIQUIDITY_TAKER
    assert pb.reason == errors_pb2.ERROR_REASON_UNSPECIFIED and pb.venue_sequence == 5
    rejected = report_pb(
        build_report(
            VenueExecution(
                Venue.PAPER, "a", "S", "o", "", "x", ExecType.REJECTED, OrderStatus.REJECTED, reason="NO_LIQUIDITY"
            ),
            None,
        )
    )
    assert rejected.reason == errors_pb2.ERROR_REASON_NO_LIQUIDITY and not rejected.HasField("fill")
