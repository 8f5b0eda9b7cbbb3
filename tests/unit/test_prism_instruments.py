"""PRISM fixed-point numbers, instruments and the fee formula."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.prism.domain import DEFAULT_INSTRUMENTS, FeeSchedule, Instrument
from services.prism.domain.fees import fee
from services.prism.domain.instruments import decimals_of, from_fixed, to_fixed


def test_decimal_strings_convert_exactly_to_fixed_point_ints_and_back() -> None:
    assert to_fixed("60000.01", 2) == 6_000_001
    assert to_fixed("0.00001", 5) == 1
    assert to_fixed(Decimal("1.50"), 2) == 150
    assert to_fixed(7, 3) == 7_000
    assert from_fixed(6_000_001, 2) == Decimal("60000.01")
    assert str(from_fixed(150, 2)) == "1.5"
    assert str(from_fixed(3_000, 2)) == "30"


@pytest.mark.parametrize("bad", ["0.001", "1e-9", "NaN", "abc", "Infinity"])
def test_values_finer_than_the_scale_or_not_numbers_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        to_fixed(bad, 2)


def test_instrument_scales_default_to_the_decimals_of_tick_and_lot() -> None:
    btc = Instrument.from_decimals("BTCUSDT", "BTC", "USDT", "0.01", "0.00001", "5")
    assert (btc.price_decimals, btc.qty_decimals, btc.tick, btc.lot) == (2, 5, 1, 1)
    assert btc.min_notional == 5 * 10**7  # 5 USDT in 1e-7 USDT notional units
    assert btc.price("60000.00") == 6_000_000 and btc.qty("0.5") == 50_000
    assert (btc.tick_size, btc.lot_size, btc.min_notional_decimal) == (Decimal("0.01"), Decimal("0.00001"), Decimal(5))
    coarse = Instrument.from_decimals("X", "X", "USD", "0.05", "10", "1")
    assert (coarse.price_decimals, coarse.tick, coarse.qty_decimals, coarse.lot) == (2, 5, 0, 10)
    assert decimals_of("0.010") == 2 and decimals_of("5") == 0


def test_default_instruments_are_btc_eth_sol_usdt() -> None:
    assert [i.symbol for i in DEFAULT_INSTRUMENTS] == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    assert all(i.quote == "USDT" and i.tick_size == Decimal("0.01") for i in DEFAULT_INSTRUMENTS)


def test_instrument_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Instrument("X", "X", "Y", tick=0, lot=1, min_notional=0, price_decimals=2, qty_decimals=0)


@pytest.mark.parametrize(
    ("price", "qty", "rate", "expected"),
    [
        (10_000, 100, 100, 100),  # exact
        (10_001, 3, 100, 4),  # 3.0003 rounds up
        (10_001, 3, -100, -3),  # a rebate rounds towards zero
        (10_001, 3, 0, 0),
        (1, 1, 1, 1),  # any charge is at least one unit
    ],
)
def test_fee_is_rate_ppm_of_notional_rounded_up(price: int, qty: int, rate: int, expected: int) -> None:
    assert fee(price, qty, rate) == expected


def test_fee_schedule_refuses_a_rebate_larger_than_the_taker_fee() -> None:
    with pytest.raises(ValueError):
        FeeSchedule(maker_ppm=-600, taker_ppm=500)
    with pytest.raises(ValueError):
        FeeSchedule(maker_ppm=0, taker_ppm=-1)
