"""Instruments and PRISM's fixed-point number representation.

Inside the engine every price, quantity, notional and fee is a plain ``int`` (fixed point, never float, never
Decimal on the hot path):

- a price is an integer number of ``10**-price_decimals`` quote units, where ``price_decimals`` defaults to the
  number of decimals of the tick size (BTCUSDT, tick 0.01: 60000.01 USDT is ``6_000_001``). The tick is an int in
  the same units (1 for a power-of-ten tick, 5 for a 0.05 tick) and every price must be a multiple of it;
- a quantity is an integer number of ``10**-qty_decimals`` base units (default: the decimals of the lot size;
  BTCUSDT, lot 0.00001: 0.5 BTC is ``50_000``); the lot is an int in the same units;
- a notional ``price * qty`` is in ``10**-(price_decimals + qty_decimals)`` quote units ("notional units");
  ``min_notional`` is stored in those units, so the minimum-notional check is one multiplication and a compare;
- fees are in notional units too (see ``fees.py``).

Keeping the scale as small as the instrument allows keeps prices and quantities below 2**30, where CPython's int
arithmetic, hashing and comparison take their fastest paths. The feed (``PrismFeedMessage``) speaks ticks and lots:
``price_ticks = price // tick``, ``qty_lots = qty // lot``. ``Decimal`` is used only here, at the boundary, to
convert configuration and API strings: a price with more decimals than ``price_decimals`` can never be on the tick,
so a servicer answers it with INVALID_TICK_SIZE (INVALID_LOT_SIZE for a quantity) without calling the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation


def decimals_of(value: str | Decimal) -> int:
    """Number of fraction digits of a decimal ("0.010" -> 2, "5" -> 0)."""
    exponent = Decimal(value).normalize().as_tuple().exponent
    if not isinstance(exponent, int):
        raise ValueError(f"not a finite number: {value!r}")
    return max(0, -exponent)


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
    price_decimals: int
    qty_decimals: int

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
        price_decimals: int | None = None,
        qty_decimals: int | None = None,
    ) -> Instrument:
        """Build from decimal strings: ``from_decimals("BTCUSDT", "BTC", "USDT", "0.01", "0.00001", "5")``.

        The scales default to the decimals of the tick and lot sizes.
        """
        if price_decimals is None:
            price_decimals = decimals_of(tick_size)
        if qty_decimals is None:
            qty_decimals = decimals_of(lot_size)
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
    def notional_decimals(self) -> int:
        """Scale of notionals and fees: ``price_decimals + qty_decimals``."""
        return self.price_decimals + self.qty_decimals

    @property
    def min_notional_decimal(self) -> Decimal:
        """Minimum notional in quote units as a Decimal."""
        return from_fixed(self.min_notional, self.notional_decimals)

    def notional_decimal(self, value: int) -> Decimal:
        """A notional or fee (notional units) -> Decimal quote units."""
        return from_fixed(value, self.notional_decimals)


DEFAULT_INSTRUMENTS: tuple[Instrument, ...] = (
    Instrument.from_decimals("BTCUSDT", "BTC", "USDT", "0.01", "0.00001", "5"),
    Instrument.from_decimals("ETHUSDT", "ETH", "USDT", "0.01", "0.0001", "5"),
    Instrument.from_decimals("SOLUSDT", "SOL", "USDT", "0.01", "0.001", "5"),
)
"""The simulated instruments, with Binance spot's tick sizes, lot sizes and minimum notionals."""
