"""PRISM matching engine behaviour: order types, time in force, priority, fees, STP, amend, stops, book deltas."""

from __future__ import annotations

from typing import Any, TypeVar

import pytest

from services.prism.domain import BookReplica, FeeSchedule, Instrument, MatchingEngine, OrderState, decode
from services.prism.domain import events as ev
from services.prism.domain.events import (
    Accepted,
    Amended,
    AmendRejected,
    BookDelta,
    Canceled,
    CancelRejected,
    Event,
    Expired,
    Rejected,
    Trade,
    Triggered,
)
from services.prism.domain.orders import BUY, FOK, GTC, GTD, IOC, LIMIT, MARKET, SELL, STOP, STOP_LIMIT

# prices in cents (tick 0.01), quantities in whole units (lot 1): small ints that read like the scenario
TST = Instrument(symbol="TST", base="T", quote="USD", tick=1, lot=1, min_notional=0, price_decimals=2, qty_decimals=0)
COARSE = Instrument(
    symbol="CRS", base="C", quote="USD", tick=5, lot=10, min_notional=10_000, price_decimals=2, qty_decimals=0
)
NO_FEES = FeeSchedule(maker_ppm=0, taker_ppm=0)

V = TypeVar("V")


def engine(fees: FeeSchedule = NO_FEES, now_ns: int = 0) -> MatchingEngine:
    return MatchingEngine(instruments=[TST, COARSE], fees=fees, now_ns=now_ns)


def of(kind: type[V], events: list[Event]) -> list[V]:
    """The events of one kind, as typed views."""
    out: list[Any] = [v for v in (decode(e) for e in events) if isinstance(v, kind)]
    return out


def names(events: list[Event]) -> list[str]:
    return [type(decode(e)).__name__ for e in events]


def fills_of(events: list[Event]) -> list[tuple[int, int, int, int]]:
    """(price, qty, maker id, taker id) of every trade."""
    return [(t.price, t.qty, t.maker_order_id, t.taker_order_id) for t in of(Trade, events)]


def buy(e: MatchingEngine, qty: int, price: int, owner: int = 1, **kw: Any) -> int:
    return e.submit("TST", owner, BUY, qty, price, **kw)


def sell(e: MatchingEngine, qty: int, price: int, owner: int = 2, **kw: Any) -> int:
    return e.submit("TST", owner, SELL, qty, price, **kw)


# --- limit orders, priority, partial fills ----------------------------------------------------------------------------


def test_limit_order_that_does_not_cross_is_accepted_and_rests() -> None:
    e = engine()
    oid = buy(e, 5, 10_000)
    out = e.drain()
    assert names(out) == ["Accepted", "BookDelta"]
    acc = of(Accepted, out)[0]
    assert (acc.order_id, acc.side, acc.order_type, acc.time_in_force, acc.price, acc.qty) == (oid, BUY, LIMIT, GTC,
                                                                                                10_000, 5)  # fmt: skip
    assert of(BookDelta, out)[0][2:] == (1, BUY, 10_000, 5, 1)
    top = e.top_of_book("TST")
    assert (top.bid_price, top.bid_qty, top.bid_count, top.ask_price) == (10_000, 5, 1, 0)
    view = e.order(oid)
    assert view is not None and view.state is OrderState.RESTING and view.leaves_qty == 5


def test_better_price_fills_first_then_earlier_order_at_the_same_price() -> None:
    e = engine()
    a = sell(e, 1, 10_100, owner=2)
    b = sell(e, 1, 10_000, owner=3)
    c = sell(e, 1, 10_000, owner=4)
    e.drain()
    t = buy(e, 3, 10_100)
    assert fills_of(e.drain()) == [(10_000, 1, b, t), (10_000, 1, c, t), (10_100, 1, a, t)]


def test_trade_prints_at_the_resting_order_price_not_the_incoming_limit() -> None:
    e = engine()
    sell(e, 2, 10_000)
    buy(e, 2, 10_500)
    assert [t.price for t in of(Trade, e.drain())] == [10_000]


def test_partial_fill_leaves_the_maker_resting_with_the_rest_and_reports_cum_and_leaves() -> None:
    e = engine()
    m = sell(e, 10, 10_000)
    t = buy(e, 4, 10_000)
    out = e.drain()
    trade = of(Trade, out)[0]
    assert (trade.maker_order_id, trade.maker_cum_qty, trade.maker_leaves_qty) == (m, 4, 6)
    assert (trade.taker_order_id, trade.taker_cum_qty, trade.taker_leaves_qty) == (t, 4, 0)
    assert trade.aggressor_side == BUY
    view = e.order(m)
    assert view is not None and (view.cum_qty, view.leaves_qty) == (4, 6)
    assert e.order(t) is None  # filled: done
    assert of(BookDelta, out)[-1][3:] == (SELL, 10_000, 6, 1)


def test_incoming_limit_fills_what_crosses_and_rests_the_remainder_at_its_limit() -> None:
    e = engine()
    sell(e, 3, 10_000)
    t = buy(e, 5, 10_000)
    out = e.drain()
    assert sum(tr.qty for tr in of(Trade, out)) == 3
    top = e.top_of_book("TST")
    assert (top.bid_price, top.bid_qty, top.ask_price) == (10_000, 2, 0)
    view = e.order(t)
    assert view is not None and (view.cum_qty, view.leaves_qty) == (3, 2)


def test_one_order_fills_against_many_makers_across_levels() -> None:
    e = engine()
    makers = [sell(e, 1, 10_000 + i, owner=10 + i) for i in range(5)]
    t = buy(e, 5, 10_004)
    out = e.drain()
    assert [f[2] for f in fills_of(out)] == makers
    assert [tr.taker_cum_qty for tr in of(Trade, out)] == [1, 2, 3, 4, 5]
    assert e.top_of_book("TST").ask_price == 0 and e.order(t) is None


# --- market orders, IOC, FOK ------------------------------------------------------------------------------------------


def test_market_order_sweeps_the_book_and_expires_what_it_could_not_fill() -> None:
    e = engine()
    sell(e, 2, 10_000)
    sell(e, 2, 10_200)
    m = e.submit("TST", 1, BUY, 10, order_type=MARKET, tif=IOC)
    out = e.drain()
    assert [(t.price, t.qty) for t in of(Trade, out)] == [(10_000, 2), (10_200, 2)]
    exp = of(Expired, out)
    assert [(x.order_id, x.expired_qty, x.reason) for x in exp] == [(m, 6, "IOC_REMAINDER")]


def test_market_order_on_an_empty_side_expires_with_no_liquidity() -> None:
    e = engine()
    buy(e, 1, 9_000)
    e.drain()
    m = e.submit("TST", 1, BUY, 3, order_type=MARKET, tif=IOC)
    out = e.drain()
    assert names(out) == ["Accepted", "Expired"]
    assert of(Expired, out)[0][2:] == (m, 1, 3, "NO_LIQUIDITY")


def test_market_order_with_gtc_is_rejected_and_unspecified_tif_means_ioc() -> None:
    e = engine()
    e.submit("TST", 1, BUY, 3, order_type=MARKET, tif=GTC)
    assert of(Rejected, e.drain())[0].reason == "VALIDATION_FAILED"
    e.submit("TST", 1, BUY, 3, order_type=MARKET, tif=0)
    out = e.drain()
    assert of(Accepted, out)[0].time_in_force == IOC and of(Expired, out)


def test_ioc_limit_fills_what_it_can_and_the_rest_expires() -> None:
    e = engine()
    sell(e, 2, 10_000)
    sell(e, 2, 10_100)
    t = buy(e, 5, 10_000, tif=IOC)
    out = e.drain()
    assert fills_of(out) == [(10_000, 2, 1, t)]
    assert of(Expired, out)[0][2:] == (t, 1, 3, "IOC_REMAINDER")
    assert e.order(t) is None and e.top_of_book("TST").bid_price == 0


def test_ioc_that_does_not_cross_expires_without_touching_the_book() -> None:
    e = engine()
    sell(e, 2, 10_100)
    e.drain()
    before = e.snapshot("TST")
    buy(e, 5, 10_000, tif=IOC)
    out = e.drain()
    assert names(out) == ["Accepted", "Expired"]
    assert e.snapshot("TST") == before


def test_fok_that_cannot_fill_completely_does_not_fill_at_all() -> None:
    e = engine()
    sell(e, 2, 10_000)
    sell(e, 2, 10_100)
    before = e.snapshot("TST")
    t = buy(e, 5, 10_100, tif=FOK)
    out = e.drain()
    assert not of(Trade, out)
    assert of(Expired, out)[0][2:] == (t, 1, 5, "FOK_NOT_FILLABLE")
    assert e.snapshot("TST") == before


def test_fok_that_can_fill_completely_fills_across_levels() -> None:
    e = engine()
    sell(e, 2, 10_000)
    sell(e, 3, 10_100)
    sell(e, 9, 10_200)
    t = buy(e, 5, 10_100, tif=FOK)
    out = e.drain()
    assert [(f[0], f[1]) for f in fills_of(out)] == [(10_000, 2), (10_100, 3)]
    assert not of(Expired, out) and e.order(t) is None


def test_fok_market_order_is_all_or_nothing_too() -> None:
    e = engine()
    sell(e, 2, 10_000)
    e.submit("TST", 1, BUY, 3, order_type=MARKET, tif=FOK)
    assert of(Expired, e.drain())[0].reason == "FOK_NOT_FILLABLE"
    e.submit("TST", 1, BUY, 2, order_type=MARKET, tif=FOK)
    assert sum(t.qty for t in of(Trade, e.drain())) == 2


def test_fok_does_not_count_liquidity_behind_an_own_order() -> None:
    e = engine()
    sell(e, 2, 10_000, owner=2)
    sell(e, 2, 10_000, owner=1)  # own order: self-trade prevention would stop the FOK here
    sell(e, 5, 10_000, owner=3)
    buy(e, 4, 10_000, owner=1, tif=FOK)
    out = e.drain()
    assert not of(Trade, out) and of(Expired, out)[0].reason == "FOK_NOT_FILLABLE"


# --- GTD --------------------------------------------------------------------------------------------------------------


def test_gtd_order_rests_until_the_clock_reaches_its_expiry_then_expires() -> None:
    e = engine(now_ns=1_000)
    g = buy(e, 3, 10_000, tif=GTD, expire_ns=5_000)
    buy(e, 1, 10_000)
    e.drain()
    e.advance(4_999)
    assert e.drain() == [] and e.order(g) is not None
    e.advance(5_000)
    out = e.drain()
    assert names(out) == ["Expired", "BookDelta"]
    assert of(Expired, out)[0][2:] == (g, 1, 3, "GTD_EXPIRED")
    assert of(BookDelta, out)[0][3:] == (BUY, 10_000, 1, 1)
    assert e.order(g) is None


def test_gtd_partially_filled_order_expires_only_its_open_quantity() -> None:
    e = engine()
    g = sell(e, 5, 10_000, tif=GTD, expire_ns=100)
    buy(e, 2, 10_000)
    e.drain()
    e.advance(100)
    assert of(Expired, e.drain())[0][2:] == (g, 2, 3, "GTD_EXPIRED")


def test_gtd_expire_time_not_in_the_future_is_rejected() -> None:
    e = engine(now_ns=1_000)
    buy(e, 1, 10_000, tif=GTD, expire_ns=1_000)
    assert of(Rejected, e.drain())[0].reason == "EXPIRE_TIME_IN_PAST"


def test_expire_time_without_gtd_is_rejected() -> None:
    e = engine()
    buy(e, 1, 10_000, tif=GTC, expire_ns=1_000)
    assert of(Rejected, e.drain())[0].reason == "VALIDATION_FAILED"


def test_clock_never_goes_back() -> None:
    e = engine(now_ns=1_000)
    e.advance(500)
    assert e.now == 1_000


# --- post-only --------------------------------------------------------------------------------------------------------


def test_post_only_that_would_cross_is_rejected_and_takes_nothing() -> None:
    e = engine()
    sell(e, 2, 10_000)
    e.drain()
    before = e.snapshot("TST")
    buy(e, 1, 10_000, post_only=True)
    out = e.drain()
    assert names(out) == ["Rejected"] and of(Rejected, out)[0].reason == "POST_ONLY_WOULD_TAKE"
    assert e.snapshot("TST") == before


def test_post_only_that_does_not_cross_rests_as_a_maker() -> None:
    e = engine()
    sell(e, 2, 10_000)
    e.drain()
    p = buy(e, 1, 9_999, post_only=True)
    assert names(e.drain()) == ["Accepted", "BookDelta"]
    assert e.order(p) is not None


def test_post_only_only_for_gtc_or_gtd_limit_orders() -> None:
    e = engine()
    buy(e, 1, 9_999, post_only=True, tif=IOC)
    e.submit("TST", 1, BUY, 1, order_type=MARKET, tif=IOC, post_only=True)
    assert [r.reason for r in of(Rejected, e.drain())] == ["VALIDATION_FAILED", "VALIDATION_FAILED"]


# --- self-trade prevention --------------------------------------------------------------------------------------------


def test_self_trade_prevention_cancels_the_incoming_order_and_keeps_the_resting_one() -> None:
    e = engine()
    resting = sell(e, 2, 10_000, owner=7)
    incoming = buy(e, 2, 10_000, owner=7)
    out = e.drain()
    assert not of(Trade, out)
    assert of(Canceled, out)[0][2:] == (incoming, 7, 2, "SELF_TRADE_PREVENTION")
    assert e.order(resting) is not None and e.order(incoming) is None


def test_self_trade_prevention_keeps_fills_made_before_reaching_the_own_order() -> None:
    e = engine()
    other = sell(e, 1, 10_000, owner=2)
    sell(e, 1, 10_000, owner=7)
    sell(e, 1, 10_000, owner=3)
    incoming = buy(e, 3, 10_000, owner=7)
    out = e.drain()
    assert fills_of(out) == [(10_000, 1, other, incoming)]
    assert of(Canceled, out)[0].canceled_qty == 2
    assert e.top_of_book("TST").ask_qty == 2  # own order and the one behind it stay


# --- cancel -----------------------------------------------------------------------------------------------------------


def test_cancel_removes_the_order_and_publishes_the_level_change() -> None:
    e = engine()
    a = buy(e, 3, 10_000)
    buy(e, 2, 10_000)
    e.drain()
    assert e.cancel(a)
    out = e.drain()
    assert names(out) == ["Canceled", "BookDelta"]
    assert of(Canceled, out)[0][2:] == (a, 1, 3, "CANCEL_REQUESTED")
    assert of(BookDelta, out)[0][3:] == (BUY, 10_000, 2, 1)


def test_cancel_of_the_last_order_at_a_level_removes_the_level() -> None:
    e = engine()
    a = buy(e, 3, 10_000)
    buy(e, 2, 9_900)
    e.cancel(a)
    assert of(BookDelta, e.drain())[-1][3:] == (BUY, 10_000, 0, 0)
    assert e.top_of_book("TST").bid_price == 9_900


def test_cancel_twice_or_after_fill_is_too_late_and_unknown_id_is_not_found() -> None:
    e = engine()
    a = buy(e, 1, 10_000)
    f = sell(e, 1, 10_100)
    buy(e, 1, 10_100)
    e.cancel(a)
    e.drain()
    assert not e.cancel(a)
    assert not e.cancel(f)
    assert not e.cancel(999)
    assert [(r.order_id, r.reason) for r in of(CancelRejected, e.drain())] == [
        (a, "TOO_LATE_TO_CANCEL"),
        (f, "TOO_LATE_TO_CANCEL"),
        (999, "ORDER_NOT_FOUND"),
    ]


def test_canceled_order_is_never_matched() -> None:
    e = engine()
    a = sell(e, 1, 10_000, owner=2)
    b = sell(e, 1, 10_000, owner=3)
    e.cancel(a)
    t = buy(e, 2, 10_000)
    out = e.drain()
    assert fills_of(out) == [(10_000, 1, b, t)]


# --- amend ------------------------------------------------------------------------------------------------------------


def test_amend_quantity_down_keeps_time_priority() -> None:
    e = engine()
    a = sell(e, 5, 10_000, owner=2)
    b = sell(e, 5, 10_000, owner=3)
    assert e.amend(a, new_qty=2)
    out = e.drain()
    assert of(Amended, out)[-1][2:] == (a, 2, 10_000, 2, 2, True)
    assert of(BookDelta, out)[-1][3:] == (SELL, 10_000, 7, 2)
    t = buy(e, 1, 10_000)
    assert fills_of(e.drain()) == [(10_000, 1, a, t)]
    assert b


def test_amend_quantity_up_loses_time_priority() -> None:
    e = engine()
    a = sell(e, 1, 10_000, owner=2)
    b = sell(e, 1, 10_000, owner=3)
    assert e.amend(a, new_qty=3)
    assert of(Amended, e.drain())[-1].kept_priority is False
    t = buy(e, 1, 10_000)
    assert fills_of(e.drain()) == [(10_000, 1, b, t)]


def test_amend_price_loses_time_priority_even_back_to_the_same_level() -> None:
    e = engine()
    a = sell(e, 1, 10_000, owner=2)
    b = sell(e, 1, 10_000, owner=3)
    e.amend(a, new_price=10_100)
    e.amend(a, new_price=10_000)
    e.drain()
    t = buy(e, 2, 10_000)
    assert [f[2] for f in fills_of(e.drain())] == [b, a]
    assert t


def test_amend_price_through_the_book_matches_as_a_taker() -> None:
    e = engine(fees=FeeSchedule(maker_ppm=100, taker_ppm=500))
    m = sell(e, 2, 10_000, owner=2)
    a = buy(e, 3, 9_900, owner=1)
    e.drain()
    assert e.amend(a, new_price=10_000)
    out = e.drain()
    trade = of(Trade, out)[0]
    assert (trade.maker_order_id, trade.taker_order_id, trade.qty) == (m, a, 2)
    assert trade.taker_fee > trade.maker_fee
    view = e.order(a)
    assert view is not None and (view.price, view.cum_qty, view.leaves_qty) == (10_000, 2, 1)


def test_amend_keeps_the_filled_quantity_and_refuses_a_quantity_not_above_it() -> None:
    e = engine()
    a = sell(e, 5, 10_000)
    buy(e, 3, 10_000)
    e.drain()
    assert not e.amend(a, new_qty=3)
    assert of(AmendRejected, e.drain())[0].reason == "TOO_LATE_TO_AMEND"
    assert e.amend(a, new_qty=4)
    amended = of(Amended, e.drain())[0]
    assert (amended.qty, amended.leaves_qty) == (4, 1)


def test_amend_of_done_or_unknown_orders_is_refused() -> None:
    e = engine()
    a = buy(e, 1, 10_000)
    e.cancel(a)
    e.drain()
    assert not e.amend(a, new_qty=2)
    assert not e.amend(12345, new_qty=2)
    assert [r.reason for r in of(AmendRejected, e.drain())] == ["TOO_LATE_TO_AMEND", "ORDER_NOT_FOUND"]


def test_amend_that_would_make_a_post_only_order_cross_is_refused() -> None:
    e = engine()
    sell(e, 1, 10_000)
    p = buy(e, 1, 9_900, post_only=True)
    e.drain()
    assert not e.amend(p, new_price=10_000)
    assert of(AmendRejected, e.drain())[0].reason == "POST_ONLY_WOULD_TAKE"
    view = e.order(p)
    assert view is not None and view.price == 9_900


def test_amend_checks_tick_and_lot() -> None:
    e = engine()
    a = e.submit("CRS", 1, BUY, 10, 10_000)
    e.drain()
    assert not e.amend(a, new_price=10_001)
    assert not e.amend(a, new_qty=15)
    assert [r.reason for r in of(AmendRejected, e.drain())] == ["INVALID_TICK_SIZE", "INVALID_LOT_SIZE"]


# --- stops ------------------------------------------------------------------------------------------------------------


def test_buy_stop_waits_then_triggers_on_a_trade_at_or_above_its_stop_and_buys_at_market() -> None:
    e = engine()
    sell(e, 1, 10_000, owner=2)
    sell(e, 5, 10_200, owner=3)
    e.drain()
    s = e.submit("TST", 1, BUY, 2, order_type=STOP, stop_price=10_000)
    out = e.drain()
    assert names(out) == ["Accepted"]  # no trade yet: nothing to trigger on
    view = e.order(s)
    assert view is not None and view.state is OrderState.STOP_PENDING
    buy(e, 1, 10_000, owner=4)  # trades at 10_000: the stop triggers
    out = e.drain()
    trig = of(Triggered, out)
    assert [(x.order_id, x.stop_price, x.last_price) for x in trig] == [(s, 10_000, 10_000)]
    stop_fills = [t for t in of(Trade, out) if t.taker_order_id == s]
    assert [(t.price, t.qty) for t in stop_fills] == [(10_200, 2)]
    assert names(out).index("Triggered") > names(out).index("Trade")


def test_sell_stop_limit_triggers_on_a_trade_at_or_below_and_rests_as_a_limit() -> None:
    e = engine()
    buy(e, 1, 10_000, owner=2)
    s = e.submit("TST", 1, SELL, 3, 9_900, order_type=STOP_LIMIT, stop_price=10_000)
    e.drain()
    sell(e, 1, 10_000, owner=3)  # trade at 10_000 <= stop
    out = e.drain()
    assert [x.order_id for x in of(Triggered, out)] == [s]
    view = e.order(s)
    assert view is not None and view.state is OrderState.RESTING and view.price == 9_900
    assert e.top_of_book("TST").ask_price == 9_900


def test_stop_entered_when_the_last_price_is_already_through_triggers_at_once() -> None:
    e = engine()
    sell(e, 1, 10_000, owner=2)
    buy(e, 1, 10_000, owner=3)  # last = 10_000
    sell(e, 2, 10_100, owner=2)
    e.drain()
    s = e.submit("TST", 1, BUY, 1, order_type=STOP, stop_price=9_900)
    out = e.drain()
    assert names(out)[:2] == ["Accepted", "Triggered"]
    assert fills_of(out) == [(10_100, 1, 3, s)]


def test_stops_cascade_when_a_triggered_stop_moves_the_price() -> None:
    e = engine()
    buy(e, 1, 10_000, owner=2)
    buy(e, 1, 9_900, owner=3)
    buy(e, 1, 9_800, owner=4)
    s1 = e.submit("TST", 5, SELL, 1, order_type=STOP, stop_price=10_000)
    s2 = e.submit("TST", 6, SELL, 1, order_type=STOP, stop_price=9_900)
    e.drain()
    sell(e, 1, 10_000, owner=7)  # 10_000 trades -> s1 sells at 9_900 -> s2 sells at 9_800
    out = e.drain()
    assert [x.order_id for x in of(Triggered, out)] == [s1, s2]
    assert [t.price for t in of(Trade, out)] == [10_000, 9_900, 9_800]


def test_canceled_stop_never_triggers() -> None:
    e = engine()
    sell(e, 1, 10_000, owner=2)
    sell(e, 1, 10_100, owner=2)
    s = e.submit("TST", 1, BUY, 1, order_type=STOP, stop_price=10_000)
    assert e.cancel(s)
    buy(e, 1, 10_000, owner=3)
    out = e.drain()
    assert not of(Triggered, out) and e.top_of_book("TST").ask_qty == 1


def test_stop_validation() -> None:
    e = engine()
    e.submit("TST", 1, BUY, 1, order_type=STOP)  # no stop price
    e.submit("TST", 1, BUY, 1, 10_000, order_type=STOP, stop_price=10_000)  # STOP takes no limit price
    e.submit("TST", 1, BUY, 1, order_type=STOP_LIMIT, stop_price=10_000)  # STOP_LIMIT needs one
    e.submit("CRS", 1, BUY, 10, 10_000, order_type=STOP_LIMIT, stop_price=10_001)
    assert [r.reason for r in of(Rejected, e.drain())] == ["VALIDATION_FAILED"] * 3 + ["INVALID_TICK_SIZE"]


def test_pending_stop_can_be_amended_and_expires_as_gtd() -> None:
    e = engine()
    s = e.submit("TST", 1, BUY, 2, 10_100, order_type=STOP_LIMIT, stop_price=10_000, tif=GTD, expire_ns=50)
    assert e.amend(s, new_qty=4, new_price=10_200)
    view = e.order(s)
    assert view is not None and (view.qty, view.price, view.state) == (4, 10_200, OrderState.STOP_PENDING)
    e.advance(50)
    assert of(Expired, e.drain())[0][2:] == (s, 1, 4, "GTD_EXPIRED")


# --- fees -------------------------------------------------------------------------------------------------------------


def test_maker_and_taker_pay_their_own_rates_rounded_up() -> None:
    e = engine(fees=FeeSchedule(maker_ppm=100, taker_ppm=500))
    sell(e, 3, 10_001)  # 3 x 100.01 USD: notional 30_003 notional units (10**-(2 + 0) USD: cents)
    buy(e, 3, 10_001)
    trade = of(Trade, e.drain())[0]
    # maker 30_003 x 100 / 1e6 = 3.0003 -> 4 cents; taker 30_003 x 500 / 1e6 = 15.0015 -> 16 cents
    assert (trade.maker_fee, trade.taker_fee) == (4, 16)


def test_maker_rebate_is_negative_and_rounded_towards_zero() -> None:
    e = engine(fees=FeeSchedule(maker_ppm=-100, taker_ppm=500))
    sell(e, 3, 10_001)
    buy(e, 3, 10_001)
    trade = of(Trade, e.drain())[0]
    assert trade.maker_fee == -3  # -3.0003 -> -3


def test_fee_tier_applies_per_owner() -> None:
    e = engine(fees=FeeSchedule(maker_ppm=100, taker_ppm=500))
    e.set_fee_tier(9, maker_ppm=0, taker_ppm=100)
    sell(e, 100, 10_000, owner=2)
    buy(e, 100, 10_000, owner=9)
    trade = of(Trade, e.drain())[0]
    assert (trade.maker_fee, trade.taker_fee) == (100, 100)  # 1_000_000 cents x 100 ppm = 100 cents each


def test_fee_in_real_units_for_btcusdt() -> None:
    e = MatchingEngine(fees=FeeSchedule(maker_ppm=1_000, taker_ppm=1_000))
    btc = e.book("BTCUSDT").instrument
    e.submit("BTCUSDT", 1, SELL, btc.qty("0.5"), btc.price("60000.00"))
    e.submit("BTCUSDT", 2, BUY, btc.qty("0.5"), btc.price("60000.00"))
    trade = of(Trade, e.drain())[0]
    assert btc.notional_decimal(trade.taker_fee) == btc.notional_decimal(trade.maker_fee)
    assert str(btc.notional_decimal(trade.taker_fee)) == "30"  # 0.1 % of 30_000 USDT


# --- validation -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("symbol", "qty", "price", "reason"),
    [
        ("NOPE", 10, 10_000, "UNKNOWN_SYMBOL"),
        ("CRS", 10, 10_001, "INVALID_TICK_SIZE"),
        ("CRS", 15, 10_000, "INVALID_LOT_SIZE"),
        ("CRS", 0, 10_000, "VALIDATION_FAILED"),
        ("CRS", -10, 10_000, "VALIDATION_FAILED"),
        ("CRS", 10, 0, "VALIDATION_FAILED"),
        ("CRS", 10, 995, "BELOW_MIN_NOTIONAL"),
    ],
)
def test_invalid_orders_are_rejected_with_a_reason(symbol: str, qty: int, price: int, reason: str) -> None:
    e = engine()
    oid = e.submit(symbol, 1, BUY, qty, price)
    out = e.drain()
    assert names(out) == ["Rejected"]
    rej = of(Rejected, out)[0]
    assert (rej.order_id, rej.reason) == (oid, reason)
    assert e.order(oid) is None


def test_bad_side_order_type_and_tif_are_rejected() -> None:
    e = engine()
    e.submit("TST", 1, 3, 1, 10_000)
    e.submit("TST", 1, BUY, 1, 10_000, order_type=9)
    e.submit("TST", 1, BUY, 1, 10_000, tif=7)
    assert [r.reason for r in of(Rejected, e.drain())] == ["VALIDATION_FAILED"] * 3


def test_rejected_orders_still_consume_an_id() -> None:
    e = engine()
    a = e.submit("NOPE", 1, BUY, 1, 1)
    b = buy(e, 1, 10_000)
    assert b == a + 1


# --- book deltas, top of book -----------------------------------------------------------------------------------------


def test_book_update_ids_increase_by_one_per_symbol_and_replaying_deltas_rebuilds_the_book() -> None:
    e = engine()
    replicas = {s: BookReplica(s) for s in ("TST", "CRS")}
    for i in range(40):
        buy(e, 1 + i % 3, 9_990 - i % 7, owner=i % 5)
        sell(e, 1 + i % 2, 10_000 + i % 5, owner=i % 4)
        e.submit("CRS", 1, BUY, 10 * (1 + i % 3), 10_000 - 5 * (i % 4))
        if i % 3 == 0:
            buy(e, 4, 10_002, owner=9)
        if i % 4 == 0:
            e.cancel(i + 1)
        if i % 5 == 0:
            e.amend(i + 2, new_qty=1)
    out = e.drain()
    for symbol, rep in replicas.items():
        ids = [d.update_id for d in of(BookDelta, out) if d.symbol == symbol]
        assert ids == list(range(1, len(ids) + 1))
        assert all(rep.apply(x) for x in out)
        assert rep.snapshot() == e.snapshot(symbol)


def test_replica_detects_a_gap_and_resyncs_from_a_snapshot() -> None:
    e = engine()
    buy(e, 1, 10_000)
    buy(e, 1, 9_900)
    buy(e, 1, 9_800)
    deltas = [x for x in e.drain() if x[0] == ev.BOOK]
    rep = BookReplica("TST")
    assert rep.apply(deltas[0])
    assert not rep.apply(deltas[2])  # update id 3 after 1: a gap
    rep = BookReplica.from_snapshot(e.snapshot("TST"))
    buy(e, 1, 9_700)
    assert all(rep.apply(x) for x in e.drain())
    assert rep.snapshot() == e.snapshot("TST")


def test_top_of_book_and_depth() -> None:
    e = engine()
    buy(e, 1, 9_900)
    buy(e, 2, 9_900)
    buy(e, 4, 9_800)
    sell(e, 3, 10_100)
    top = e.top_of_book("TST")
    assert top[2:] == (9_900, 3, 2, 10_100, 3, 1)
    snap = e.snapshot("TST", depth=1)
    assert (snap.bids, snap.asks) == ([(9_900, 3, 2)], [(10_100, 3, 1)])
    assert e.snapshot("TST").bids == [(9_900, 3, 2), (9_800, 4, 1)]


def test_events_decode_to_typed_views() -> None:
    e = engine()
    buy(e, 1, 10_000)
    views = [decode(x) for x in e.drain()]
    assert isinstance(views[0], Accepted) and views[0].symbol == "TST"
    assert isinstance(views[1], BookDelta) and views[1].update_id == 1


def test_same_commands_give_the_same_events() -> None:
    def run() -> list[Event]:
        e = engine(fees=FeeSchedule())
        for i in range(200):
            side = BUY if (i * 7) % 3 else SELL
            e.submit("TST", i % 6, side, 1 + i % 4, 10_000 + ((i * 13) % 9) - 4)
            if i % 5 == 0:
                e.cancel(i // 2 + 1)
        return e.drain()

    assert run() == run()
