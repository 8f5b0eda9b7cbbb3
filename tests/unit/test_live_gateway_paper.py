"""Paper venue fill math: fills at the mid moved by the slippage, fees in bps of notional, limits rest until crossed;
the adapter applies every quote of an MD message and skips malformed ones."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nats.aio.msg import Msg
from trade.normalizer.v1 import events_pb2
from trade.type.v1 import decimal_pb2, market_data_pb2

from services.live_gateway.adapters.paper import PaperAdapter
from services.live_gateway.domain.model import (
    AmendOrder,
    CancelOrder,
    ExecType,
    Liquidity,
    OrderSpec,
    OrderStatus,
    OrderType,
    PlaceOrder,
    Side,
    TimeInForce,
    Venue,
    VenueExecution,
    VenueRejected,
)
from services.live_gateway.domain.paper import PaperConfig, PaperEngine, fee_for, quote_asset, slipped_price
from tests.support.marketdata import md_message

D = Decimal
CONFIG = PaperConfig(slippage_bps=D(10), maker_fee_bps=D(2), taker_fee_bps=D(5))


def order(order_id: str, spec: OrderSpec, symbol: str = "BTCUSDT") -> PlaceOrder:
    return PlaceOrder("acc-1", symbol, Venue.PAPER, order_id, f"c-{order_id}", spec)


def market(side: Side, qty: str) -> OrderSpec:
    return OrderSpec(side, OrderType.MARKET, D(qty), time_in_force=TimeInForce.IOC)


def limit(side: Side, qty: str, price: str, tif: TimeInForce = TimeInForce.GTC, post_only: bool = False) -> OrderSpec:
    return OrderSpec(side, OrderType.LIMIT, D(qty), D(price), time_in_force=tif, post_only=post_only)


def engine_at(bid: str, ask: str) -> PaperEngine:
    engine = PaperEngine(CONFIG)
    assert engine.on_quote("BTCUSDT", D(bid), D(ask), 1) == []
    return engine


def test_market_buy_fills_at_mid_plus_slippage_with_taker_fee() -> None:
    engine = engine_at("99", "101")  # mid 100
    result, events = engine.place(order("o1", market(Side.BUY, "2")), 10)
    assert result.status == OrderStatus.FILLED
    assert [e.exec_type for e in events] == [ExecType.NEW, ExecType.TRADE]
    trade = events[1]
    assert trade.last_price == D("100.1")  # 100 * (1 + 10 bps)
    assert trade.last_quantity == D(2)
    assert trade.fee == D("0.1001")  # 100.1 * 2 * 5 bps
    assert trade.fee_currency == "USDT"
    assert trade.liquidity == Liquidity.TAKER
    assert trade.cum_qty == D(2) and trade.leaves_qty == D(0)


def test_market_sell_fills_below_the_mid() -> None:
    engine = engine_at("99", "101")
    _, events = engine.place(order("o1", market(Side.SELL, "1")), 10)
    assert events[-1].last_price == D("99.9")


def test_limit_buy_rests_until_the_mid_crosses_then_fills_as_maker_at_its_limit() -> None:
    engine = engine_at("100", "102")  # mid 101
    result, events = engine.place(order("o1", limit(Side.BUY, "1", "100")), 10)
    assert result.status == OrderStatus.NEW
    assert [e.exec_type for e in events] == [ExecType.NEW]
    assert engine.on_quote("BTCUSDT", D("100.2"), D("101"), 20) == []  # mid 100.6: not crossed
    filled = engine.on_quote("BTCUSDT", D("99"), D("100.5"), 30)  # mid 99.75 <= 100
    assert len(filled) == 1
    trade = filled[0]
    assert trade.exec_type == ExecType.TRADE and trade.order_status == OrderStatus.FILLED
    assert trade.last_price == D(100)
    assert trade.liquidity == Liquidity.MAKER
    assert trade.fee == D("0.02")  # 100 * 1 * 2 bps
    assert engine.on_quote("BTCUSDT", D("90"), D("91"), 40) == []  # filled once only


def test_marketable_limit_fills_as_taker_capped_at_its_limit() -> None:
    engine = engine_at("99.99", "100.01")  # mid 100; slipped buy 100.1 > limit 100.05
    _, events = engine.place(order("o1", limit(Side.BUY, "1", "100.05")), 10)
    assert events[-1].exec_type == ExecType.TRADE
    assert events[-1].last_price == D("100.05")
    assert events[-1].liquidity == Liquidity.TAKER


def test_ioc_limit_that_does_not_cross_expires() -> None:
    engine = engine_at("100", "102")
    result, events = engine.place(order("o1", limit(Side.BUY, "1", "90", TimeInForce.IOC)), 10)
    assert result.status == OrderStatus.EXPIRED
    assert [e.exec_type for e in events] == [ExecType.NEW, ExecType.EXPIRED]


def test_market_order_without_a_quote_is_rejected_no_liquidity() -> None:
    with pytest.raises(VenueRejected) as err:
        PaperEngine(CONFIG).place(order("o1", market(Side.BUY, "1")), 10)
    assert err.value.reason == "NO_LIQUIDITY"


def test_post_only_that_would_take_is_rejected() -> None:
    engine = engine_at("99", "101")
    with pytest.raises(VenueRejected) as err:
        engine.place(order("o1", limit(Side.BUY, "1", "100.5", post_only=True)), 10)
    assert err.value.reason == "POST_ONLY_WOULD_TAKE"


def test_stop_orders_are_not_supported() -> None:
    spec = OrderSpec(Side.SELL, OrderType.STOP, D(1), stop_price=D(90), time_in_force=TimeInForce.IOC)
    with pytest.raises(VenueRejected) as err:
        engine_at("99", "101").place(order("o1", spec), 10)
    assert err.value.reason == "NOT_SUPPORTED"


def test_cancel_of_a_resting_order_then_again_is_too_late() -> None:
    engine = engine_at("100", "102")
    engine.place(order("o1", limit(Side.BUY, "1", "90")), 10)
    cancel = CancelOrder("acc-1", "BTCUSDT", Venue.PAPER, "o1")
    events = engine.cancel(cancel, 20)
    assert [(e.exec_type, e.order_status) for e in events] == [(ExecType.CANCELED, OrderStatus.CANCELED)]
    with pytest.raises(VenueRejected) as err:
        engine.cancel(cancel, 30)
    assert err.value.reason == "TOO_LATE_TO_CANCEL"
    with pytest.raises(VenueRejected) as unknown:
        engine.cancel(CancelOrder("acc-1", "BTCUSDT", Venue.PAPER, "nope"), 30)
    assert unknown.value.reason == "ORDER_NOT_FOUND"


def test_amend_to_a_crossing_price_replaces_then_fills() -> None:
    engine = engine_at("100", "102")
    engine.place(order("o1", limit(Side.BUY, "1", "90")), 10)
    amend = AmendOrder("acc-1", "BTCUSDT", Venue.PAPER, "o1", "", limit(Side.BUY, "3", "101.5"), 2)
    events = engine.amend(amend, 20)
    assert [e.exec_type for e in events] == [ExecType.REPLACED, ExecType.TRADE]
    assert events[0].quantity == D(3) and events[0].limit_price == D("101.5")
    assert events[1].last_quantity == D(3)


def test_exec_ids_are_per_order_and_deterministic() -> None:
    a, b = engine_at("99", "101"), engine_at("99", "101")
    _, ea = a.place(order("o1", market(Side.BUY, "1")), 10)
    _, eb = b.place(order("o1", market(Side.BUY, "1")), 99)
    assert [e.exec_id for e in ea] == [e.exec_id for e in eb] == ["o1:1", "o1:2"]
    assert ea[1].trade_id == eb[1].trade_id


def test_quote_asset_of_symbols() -> None:
    assert quote_asset("BTCUSDT") == "USDT"
    assert quote_asset("ETHBTC") == "BTC"
    assert quote_asset("BTCFDUSD") == "FDUSD"


prices = st.decimals(min_value=D("0.0001"), max_value=D(1_000_000), places=4, allow_nan=False, allow_infinity=False)
bps = st.decimals(min_value=D(0), max_value=D(500), places=2, allow_nan=False, allow_infinity=False)


@given(prices, bps)
def test_slippage_always_moves_the_price_against_the_order(mid: Decimal, slip: Decimal) -> None:
    buy = slipped_price(mid, Side.BUY, slip, 8)
    sell = slipped_price(mid, Side.SELL, slip, 8)
    assert sell <= mid <= buy
    exact = mid * slip / 10_000
    assert buy - mid - exact < D("1e-8") and mid - sell - exact < D("1e-8")


@given(prices, st.decimals(min_value=D("0.001"), max_value=D(1000), places=3), bps)
def test_fee_is_the_exact_fee_rounded_up_to_the_fee_precision(price: Decimal, qty: Decimal, rate: Decimal) -> None:
    fee = fee_for(price, qty, rate, 8)
    exact = price * qty * rate / 10_000
    assert exact <= fee < exact + D("1e-8")


def _quote_msg(*bid_asks: tuple[str, str]) -> Msg:
    events = [
        events_pb2.MarketDataEvent(
            event_id=f"quote:BTCUSDT:{seq}",
            quote=market_data_pb2.Quote(
                symbol="BTCUSDT",
                bid_price=decimal_pb2.Decimal(value=bid),
                ask_price=decimal_pb2.Decimal(value=ask),
                sequence=seq,
            ),
        )
        for seq, (bid, ask) in enumerate(bid_asks, start=1)
    ]
    return Msg(cast(Any, None), "md.quote.BTCUSDT", "", md_message(*events), None)


async def test_paper_adapter_applies_every_quote_of_a_message_and_skips_malformed_messages() -> None:
    class Clock:
        def now_ns(self) -> int:
            return 50

    delivered: list[VenueExecution] = []

    async def sink(executions: Sequence[VenueExecution], advance_checkpoint: bool) -> None:
        delivered.extend(executions)

    adapter = PaperAdapter(engine_at("100", "102"), cast(Any, None), Clock())
    await adapter.start(sink, cast(Any, None))
    adapter.engine.place(order("o1", limit(Side.BUY, "1", "100")), 10)
    await adapter._on_msg(Msg(cast(Any, None), "md.quote.BTCUSDT", "", b"\xff\xff", None))  # logged, skipped
    await adapter._on_msg(_quote_msg(("100.2", "101"), ("99", "100.5"), ("101", "103")))  # the middle one crosses
    assert [(e.exec_type, e.last_price) for e in delivered] == [(ExecType.TRADE, D(100))]
    assert adapter.engine.mid("BTCUSDT") == D(102)  # the last quote is the mid
