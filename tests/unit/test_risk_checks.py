"""Every pre-trade rule: a passing order, one rejection per rule with its machine-readable reason, and the
reference price used."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from services.risk.domain.checks import CheckInputs, evaluate
from services.risk.domain.model import (
    AccountLimits,
    KillSwitchEvent,
    KillSwitchScope,
    LimitChange,
    OpenExposure,
    OrderCheck,
    OrderType,
    PositionLimit,
    Reason,
    Side,
    Violation,
)
from services.risk.domain.state import trading_day
from tests.unit.risk_support import BTC, DEFAULTS, D, World, limit, market


async def test_order_within_every_limit_is_approved_with_the_mid_as_reference() -> None:
    world = World()
    result = await world.service.check(limit("1", "50100"))
    assert result.approved
    assert result.violations == ()
    assert result.reference_price == D("50000")
    assert result.check_id and result.check_time_ns == world.clock.now


async def test_unknown_symbol_is_rejected() -> None:
    result = await World().service.check(limit(symbol="NOPEUSDT"))
    assert "UNKNOWN_SYMBOL" in result.reasons
    assert not result.approved


async def test_disabled_instrument_is_rejected() -> None:
    result = await World().service.check(limit(symbol="OFFUSDT"))
    assert result.reasons == [Reason.INSTRUMENT_DISABLED]


async def test_limit_price_outside_the_band_is_rejected_with_the_deviation() -> None:
    result = await World().service.check(limit("1", "53000"))  # 600 bps above the mid, band 500
    assert result.reasons == [Reason.PRICE_BAND]
    assert result.violations[0].limit == D(500)
    assert result.violations[0].observed == D("600.00")


async def test_stop_price_is_banded_too() -> None:
    order = OrderCheck("acct-1", "BTCUSDT", Side.SELL, OrderType.STOP, D("1"), stop_price=D("40000"))
    result = await World().service.check(order)
    assert result.reasons == [Reason.PRICE_BAND]


async def test_quantity_above_the_instrument_maximum_is_rejected() -> None:
    world = World()
    world.mids.update("BTCUSDT", D("45000"), world.clock.now)
    result = await world.service.check(limit("11", "45000"))  # notional 495000 is within its cap
    assert result.reasons == [Reason.MAX_ORDER_QTY]
    assert result.violations[0].observed == D("11")


async def test_notional_above_the_tighter_maximum_is_rejected() -> None:
    world = World()
    world.limits.apply(
        LimitChange(
            "a1",
            "rm",
            1,
            "tighten",
            account_id="acct-1",
            new_account=dataclasses.replace(
                DEFAULTS, account_id="acct-1", max_order_notional=D("100000"), is_default=False, version=1
            ),
        )
    )
    result = await world.service.check(limit("3", "50000"))  # 150000 > account cap 100000 < instrument cap
    assert result.reasons == [Reason.MAX_NOTIONAL]
    assert result.violations[0].limit == D("100000")
    assert result.violations[0].observed == D("150000")


async def test_market_order_notional_uses_the_mid() -> None:
    world = World()
    world.mids.update("BTCUSDT", D("60000"), world.clock.now)
    approved = await world.service.check(market("8"))  # 480000 <= 500000
    rejected = await world.service.check(market("9"))  # 540000 > 500000
    assert approved.approved and approved.reference_price == D("60000")
    assert rejected.reasons == [Reason.MAX_NOTIONAL]


async def test_market_order_without_a_mid_is_rejected_for_lack_of_a_reference_price() -> None:
    world = World()
    world.clock.advance(120)  # the mid went stale
    result = await world.service.check(market("1"))
    assert result.reasons == [Reason.NO_REFERENCE_PRICE]
    assert result.reference_price is None


async def test_banded_limit_order_without_a_mid_is_rejected_for_lack_of_a_reference_price() -> None:
    world = World()
    world.clock.advance(120)
    result = await world.service.check(limit("1", "50000"))
    assert result.reasons == [Reason.NO_REFERENCE_PRICE]


async def test_limit_order_without_band_or_mid_needs_no_reference_price() -> None:
    world = World()
    world.limits.apply(
        LimitChange(
            "a1", "rm", 1, "no band", symbol="BTCUSDT", new_instrument=dataclasses.replace(BTC, price_band_bps=0)
        )
    )
    world.clock.advance(120)
    assert (await world.service.check(limit("1", "50000"))).approved


async def test_position_with_open_orders_beyond_the_maximum_is_rejected() -> None:
    world = World()
    world.exposure.apply_fill("f1", "acct-1", "BTCUSDT", Side.BUY, D("12"))
    world.exposure.apply_order("o1", "acct-1", "BTCUSDT", Side.BUY, D("5"), True, 1)
    result = await world.service.check(limit("4", "50000"))  # 12 + 5 + 4 = 21 > 20
    assert result.reasons == [Reason.MAX_POSITION]
    assert result.violations[0].observed == D("21")
    assert (await world.service.check(limit("3", "50000"))).approved  # exactly 20


async def test_account_position_limit_overrides_the_instrument_default() -> None:
    world = World()
    own = dataclasses.replace(
        DEFAULTS, account_id="acct-1", is_default=False, position_limits=(PositionLimit("BTCUSDT", D("2")),)
    )
    world.limits.apply(LimitChange("a1", "rm", 1, "small", account_id="acct-1", new_account=own))
    result = await world.service.check(limit("3", "50000"))
    assert result.reasons == [Reason.MAX_POSITION]
    assert result.violations[0].limit == D("2")


async def test_order_reducing_an_oversized_position_stays_allowed() -> None:
    world = World()
    world.exposure.apply_fill("f1", "acct-1", "BTCUSDT", Side.BUY, D("30"))  # above the max of 20
    assert (await world.service.check(limit("5", "50000", Side.SELL))).approved
    assert (await world.service.check(limit("1", "50000", Side.BUY))).reasons == [Reason.MAX_POSITION]


async def test_amend_replaces_the_open_quantity_instead_of_adding_to_it() -> None:
    world = World()
    world.exposure.apply_order("o1", "acct-1", "BTCUSDT", Side.BUY, D("9"), True, 1)
    world.exposure.apply_order("o2", "acct-1", "BTCUSDT", Side.BUY, D("9"), True, 1)
    # As a new order 9 + 9 + 3 = 21 > 20; amending o1 from 9 to 3 gives 9 + 3 = 12.
    assert (await world.service.check(limit("3", "50000"))).reasons == [Reason.MAX_POSITION]
    assert (await world.service.check(limit("3", "50000", amend="o1"))).approved
    # Amending o1 up to 10 gives 9 + 10 = 19: allowed; o1 to 12 (qty limit aside) would be 21.
    assert (await world.service.check(limit("10", "50000", amend="o1"))).approved


async def test_amend_of_a_partly_filled_order_counts_only_its_new_open_quantity() -> None:
    world = World()
    world.exposure.apply_fill("f1", "acct-1", "BTCUSDT", Side.BUY, D("6"))  # o1 filled 6 of 10
    world.exposure.apply_order("o1", "acct-1", "BTCUSDT", Side.BUY, D("4"), True, 2, filled_qty=D("6"))
    world.exposure.apply_order("o2", "acct-1", "BTCUSDT", Side.BUY, D("6"), True, 1)
    # o1 amended to a total of 10 keeps 4 open: 6 + 6 + 4 = 16; as a new order 6 + 4 + 6 + 10 = 26.
    assert (await world.service.check(limit("10", "50000", amend="o1"))).approved
    assert (await world.service.check(limit("10", "50000"))).reasons == [Reason.MAX_POSITION]


async def test_open_order_count_at_the_maximum_rejects_new_orders_but_not_amends() -> None:
    world = World()
    for i in range(5):
        world.exposure.apply_order(f"o{i}", "acct-1", "BTCUSDT", Side.BUY, D("0.1"), True, 1)
    result = await world.service.check(limit("0.1", "50000"))
    assert result.reasons == [Reason.MAX_OPEN_ORDERS]
    assert result.violations[0].limit == D(5)
    assert (await world.service.check(limit("0.1", "50000", amend="o1"))).approved


async def test_closed_orders_do_not_count_as_open() -> None:
    world = World()
    for i in range(5):
        world.exposure.apply_order(f"o{i}", "acct-1", "BTCUSDT", Side.BUY, D("0.1"), True, 1)
    world.exposure.apply_order("o0", "acct-1", "BTCUSDT", Side.BUY, D("0"), False, 2)
    assert (await world.service.check(limit("0.1", "50000"))).approved


async def test_order_rate_over_the_sliding_window_is_rejected_then_recovers() -> None:
    world = World()
    for _ in range(3):
        assert (await world.service.check(limit())).approved
        world.clock.advance(0.2)
    result = await world.service.check(limit())
    assert result.reasons == [Reason.ORDER_RATE]
    world.clock.advance(0.41)  # the first order left the 1 s window
    assert (await world.service.check(limit())).approved


async def test_rejected_checks_do_not_count_towards_the_rate() -> None:
    world = World()
    for _ in range(5):
        assert not (await world.service.check(limit("11"))).approved
    for _ in range(3):
        assert (await world.service.check(limit())).approved


async def test_rate_is_per_account() -> None:
    world = World()
    for _ in range(3):
        await world.service.check(limit(account="acct-1"))
    assert (await world.service.check(limit(account="acct-2"))).approved


async def test_daily_loss_reached_rejects_orders_that_add_risk() -> None:
    world = World()
    world.pnl.update("acct-1", trading_day(world.clock.now), D("-1000"), world.clock.now)
    result = await world.service.check(limit())
    assert result.reasons == [Reason.DAILY_LOSS]
    assert result.violations[0].limit == D("1000")


async def test_daily_loss_reached_still_allows_reducing_orders() -> None:
    world = World()
    world.exposure.apply_fill("f1", "acct-1", "BTCUSDT", Side.BUY, D("2"))
    world.pnl.update("acct-1", trading_day(world.clock.now), D("-5000"), world.clock.now)
    assert (await world.service.check(limit("2", "50000", Side.SELL))).approved
    assert (await world.service.check(limit("3", "50000", Side.SELL))).reasons == [Reason.DAILY_LOSS]


async def test_daily_loss_passes_when_no_pnl_is_known_or_it_is_yesterdays() -> None:
    world = World()
    assert (await world.service.check(limit())).approved
    world.pnl.update("acct-1", "2020-01-01", D("-5000"), world.clock.now - 10**9)
    assert (await world.service.check(limit())).approved


async def test_kill_switch_rejects_with_its_reason() -> None:
    world = World()
    world.kill_switches.apply(
        KillSwitchEvent("k1", True, KillSwitchScope.ACCOUNT, "acct-1", "rm", "runaway algo", world.clock.now)
    )
    result = await world.service.check(limit())
    assert result.reasons == [Reason.KILL_SWITCH]
    assert "runaway algo" in result.violations[0].message


async def test_compliance_violations_are_reported() -> None:
    world = World()
    world.compliance.violations = [Violation(Reason.RESTRICTED_SYMBOL, "restricted")]
    result = await world.service.check(limit())
    assert result.reasons == [Reason.RESTRICTED_SYMBOL]
    assert world.compliance.calls[0].symbol == "BTCUSDT"


async def test_compliance_unreachable_fails_closed() -> None:
    world = World()
    world.compliance.down = True
    result = await world.service.check(limit())
    assert result.reasons == [Reason.CHECK_UNAVAILABLE]


async def test_every_failed_check_is_listed() -> None:
    world = World()
    world.compliance.violations = [Violation(Reason.TRADING_WINDOW, "closed")]
    world.kill_switches.apply(KillSwitchEvent("k1", True, KillSwitchScope.GLOBAL, "", "rm", "halt", 1))
    result = await world.service.check(limit("11", "60000"))
    assert set(result.reasons) == {
        Reason.KILL_SWITCH,
        Reason.PRICE_BAND,
        Reason.MAX_ORDER_QTY,
        Reason.MAX_NOTIONAL,
        Reason.TRADING_WINDOW,
    }


def _inputs(**overrides: object) -> CheckInputs:
    base: dict[str, object] = {
        "instrument": BTC,
        "account": AccountLimits("acct-1"),
        "mid": D("50000"),
        "position": D(0),
        "open": OpenExposure(),
        "day_net_pnl": None,
        "recent_orders": 0,
        "kill_switch": None,
    }
    base.update(overrides)
    return CheckInputs(**base)  # type: ignore[arg-type]


@given(st.decimals(min_value=Decimal("40000"), max_value=Decimal("60000"), places=2))
def test_band_rejects_exactly_the_prices_more_than_band_bps_from_the_mid(price: Decimal) -> None:
    order = OrderCheck("acct-1", "BTCUSDT", Side.BUY, OrderType.LIMIT, D("0.001"), limit_price=price)
    reasons = [v.reason for v in evaluate(order, _inputs())]
    outside = abs(price - D("50000")) / D("50000") * 10_000 > 500
    assert (Reason.PRICE_BAND in reasons) == outside


@given(
    st.decimals(min_value=Decimal("-30"), max_value=Decimal("30"), places=3),
    st.decimals(min_value=Decimal("0.001"), max_value=Decimal("10"), places=3),
    st.sampled_from([Side.BUY, Side.SELL]),
)
def test_position_check_never_blocks_an_order_that_shrinks_the_exposure(
    position: Decimal, qty: Decimal, side: Side
) -> None:
    order = OrderCheck("acct-1", "BTCUSDT", side, OrderType.LIMIT, qty, limit_price=D("50000"))
    reasons = [v.reason for v in evaluate(order, _inputs(position=position))]
    after = position + qty if side is Side.BUY else position - qty
    if abs(after) <= 20 or abs(after) <= abs(position):
        assert Reason.MAX_POSITION not in reasons
    else:
        assert Reason.MAX_POSITION in reasons
