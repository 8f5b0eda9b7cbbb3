"""Maker/taker fees in integer quote units.

A rate is in parts per million of the notional (``ppm``): 1 bp = 100 ppm, 0.1 % = 1_000 ppm; a negative maker rate
is a rebate. A fee is an int in ``10**-fee_decimals`` quote units (8 decimals by default). For a fill of ``qty`` at
``price`` (fixed-point ints, see ``instruments.py``)::

    fee = ceil(price * qty * rate_ppm / fee_divisor)
    fee_divisor = 10 ** (price_decimals + qty_decimals - fee_decimals) * 1_000_000

Rounding is towards +infinity: a charge is rounded up and a rebate towards zero, so the venue never pays out a
fraction it did not earn. In integer arithmetic that is ``-((-price * qty * rate) // fee_divisor)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.prism.domain.instruments import Instrument

FEE_DECIMALS = 8
PPM = 1_000_000


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """Maker and taker rates in ppm of notional (negative maker = rebate)."""

    maker_ppm: int = 100
    taker_ppm: int = 500
    fee_decimals: int = FEE_DECIMALS

    def __post_init__(self) -> None:
        if self.taker_ppm < 0 or self.taker_ppm + self.maker_ppm < 0:
            raise ValueError("taker rate must be >= 0 and a maker rebate may not exceed the taker fee")


def fee_divisor(instrument: Instrument, fee_decimals: int = FEE_DECIMALS) -> int:
    """The divisor turning ``price * qty * rate_ppm`` into fee units for an instrument."""
    shift = instrument.price_decimals + instrument.qty_decimals - fee_decimals
    if shift < 0:
        raise ValueError(f"{instrument.symbol}: fee_decimals exceeds price_decimals + qty_decimals")
    return int(10**shift) * PPM


def fee(price: int, qty: int, rate_ppm: int, divisor: int) -> int:
    """Fee of one fill (the engine inlines this formula)."""
    return -((-price * qty * rate_ppm) // divisor)
