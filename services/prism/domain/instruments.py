"""Instruments and PRISM's fixed-point number representation.

Inside the engine every price, quantity, notional and fee is a plain ``int`` (fixed point, never float, never
Decimal on the hot path):

- a price is an integer number of ``10**-price_decimals`` quote units (8 decimals by default, like most crypto
  venues' wire formats): 60000.01 USDT is ``6_000_001_000_000``; the tick size is an int in the same units and every
  price must be a multiple of it;
- a quantity is an integer number of ``10**-qty_decimals`` base units (8 by default); the lot size is an int in the
  same units and every quantity must be a multiple of it;
- a notional ``price * qty`` is in ``10**-(price_decimals + qty_decimals)`` quote units, and ``min_notional`` is
  stored in those units, so the minimum-notional check is one multiplication and one comparison;
- fees are in ``10**-fee_decimals`` quote units (8 by default; see ``fees.py``).

The feed (``PrismFeedMessage``) speaks ticks and lots: ``price_ticks = price // tick``, ``qty_lots = qty // lot``.
``Decimal`` is used only here, at the boundary, to convert configuration and API strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

DEFAULT_DECIMALS = 8


def to_fixed(value: str | Decimal | int, decimals: int) -> int:
    """Exact decimal (string, Decimal or int) -> fixed-point int with ``decimals`` fraction digits.

    Raises ValueError when the value is not a finite number or has more fraction digits than the scale allows.
    """
    try:
        d = Decimal(value)
    except (InvalidOperation, TypeError) as exc:
        raise ValueError(f"not a decimal number: {value!r}") from exc
    if not d.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    scaled = d.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value!r} has more than {decimals} fraction digits")
    return int(scaled)


def from_fixed(value: int, decimals: int) -> Decimal:
    """Fixed-point int -> Decimal, normalized ("1.50" -> "1.5", never an exponent for integers)."""
    d = Decimal(value).scaleb(-decimals).normalize()
    return d.quantize(Decimal(1)) if d == d.to_integral_value() else d


@dataclass(frozen=True, slots=True)
class Instrument:
    """A spot instrument as the engine sees it; all limits are fixed-point ints (see the module docstring)."""

    symbol: str
    base: str
    quote: str
    tick: int
    lot: int
    min_notional: int
    price_decimals: int = DEFAULT_DECIMALS
    qty_decimals: int = DEFAULT_DECIMALS

    def __post_init__(self) -> None:
        if self.tick <= 0 or self.lot <= 0 or self.min_notional < 0:
            raise ValueError(f"{self.symbol}: tick and lot must be > 0 and min_notional >= 0")

    @classmethod
    def from_decimals(
        cls,
        symbol: str,
        base: str,
        quote: str,
        tick_size: str,
        lot_size: str,
        min_notional: str,
        price_decimals: int = DEFAULT_DECIMALS,
        qty_decimals: int = DEFAULT_DECIMALS,
    ) -> Instrument:
        """Build from decimal strings: ``from_decimals("BTCUSDT", "BTC", "USDT", "0.01", "0.00001", "5")``."""
        return cls(
            symbol=symbol,
            base=base,
            quote=quote,
            tick=to_fixed(tick_size, price_decimals),
            lot=to_fixed(lot_size, qty_decimals),
            min_notional=to_fixed(min_notional, price_decimals + qty_decimals),
            price_decimals=price_decimals,
            qty_decimals=qty_decimals,
        )

    # boundary conversions (not for the hot path)
    def price(self, value: str | Decimal | int) -> int:
        """Decimal price -> fixed-point int (not checked against the tick: the engine does that)."""
        return to_fixed(value, self.price_decimals)

    def qty(self, value: str | Decimal | int) -> int:
        """Decimal quantity -> fixed-point int (not checked against the lot: the engine does that)."""
        return to_fixed(value, self.qty_decimals)

    def price_decimal(self, value: int) -> Decimal:
        """Fixed-point price -> Decimal."""
        return from_fixed(value, self.price_decimals)

    def qty_decimal(self, value: int) -> Decimal:
        """Fixed-point quantity -> Decimal."""
        return from_fixed(value, self.qty_decimals)

    @property
    def tick_size(self) -> Decimal:
        """Tick size as a Decimal (for ListInstruments)."""
        return from_fixed(self.tick, self.price_decimals)

    @property
    def lot_size(self) -> Decimal:
        """Lot size as a Decimal (for ListInstruments)."""
        return from_fixed(self.lot, self.qty_decimals)

    @property
    def min_notional_decimal(self) -> Decimal:
        """Minimum notional in quote units as a Decimal."""
        return from_fixed(self.min_notional, self.price_decimals + self.qty_decimals)


DEFAULT_INSTRUMENTS: tuple[Instrument, ...] = (
    Instrument.from_decimals("BTCUSDT", "BTC", "USDT", "0.01", "0.00001", "5"),
    Instrument.from_decimals("ETHUSDT", "ETH", "USDT", "0.01", "0.0001", "5"),
    Instrument.from_decimals("SOLUSDT", "SOL", "USDT", "0.01", "0.001", "5"),
)
"""The simulated instruments, with Binance spot's tick sizes, lot sizes and minimum notionals."""
