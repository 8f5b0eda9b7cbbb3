"""Maker/taker fees in integer quote units.

A rate is in parts per million of the notional (``ppm``): 1 bp = 100 ppm, 0.1 % = 1_000 ppm; a negative maker rate
is a rebate. A fee is an int in the instrument's notional units, ``10**-(price_decimals + qty_decimals)`` quote
units (``Instrument.notional_decimal`` converts; 1e-7 USDT for BTCUSDT). For a fill of ``qty`` at ``price``::

    fee = ceil(price * qty * rate_ppm / 1_000_000)

Rounding is towards +infinity: a charge is rounded up and a rebate towards zero, so the venue never pays out a
fraction it did not earn. In integer arithmetic (floor division, any sign) that is
``(price * qty * rate_ppm + 999_999) // 1_000_000``, which the engine inlines.
"""

from __future__ import annotations

from dataclasses import dataclass

PPM = 1_000_000


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """Maker and taker rates in ppm of notional (negative maker = rebate)."""

    maker_ppm: int = 100
    taker_ppm: int = 500

    def __post_init__(self) -> None:
        if self.taker_ppm < 0 or self.taker_ppm + self.maker_ppm < 0:
            raise ValueError("taker rate must be >= 0 and a maker rebate may not exceed the taker fee")


def fee(price: int, qty: int, rate_ppm: int) -> int:
    """Fee of one fill in notional units (the formula the engine inlines)."""
    return (price * qty * rate_ppm + PPM - 1) // PPM
