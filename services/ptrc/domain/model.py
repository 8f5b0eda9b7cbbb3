"""Fills and positions as exact Decimals, and the netting rule that turns one into the other.

Netting: an increase (or opening) fill moves the average entry price to the quantity-weighted average; a reduction
realizes (price - avg) x closed quantity (sign-adjusted for shorts) and leaves the average unchanged; a fill that
crosses zero closes the old side and opens the rest at the fill price. Realized PnL is before fees (the contract's
definition); fees are accumulated separately, converted to the quote asset.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_HALF_EVEN, Context, Decimal
from enum import Enum

ZERO = Decimal(0)
# Amounts are kept at most 18 fraction digits (the API's Decimal limit); 60 significant digits leave room.
_SCALE = Decimal("1E-18")
_CTX = Context(prec=60, rounding=ROUND_HALF_EVEN)

# Quote assets recognised as symbol suffixes, longest first (so "FDUSD" wins over "USD").
QUOTE_ASSETS = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USD", "EUR", "BTC", "ETH", "BNB")


def q18(value: Decimal) -> Decimal:
    """Round to 18 fraction digits (half-even), exact for every representable input."""
    return value.quantize(_SCALE, context=_CTX)


def split_symbol(symbol: str) -> tuple[str, str]:
    """BTCUSDT -> ("BTC", "USDT"); an unknown quote gives (symbol, "")."""
    for quote in QUOTE_ASSETS:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    return symbol, ""


class Side(Enum):
    BUY = "buy"
    SELL = "sell"


@dataclass(frozen=True, slots=True)
class FillRecord:
    """One execution as ptrc needs it. quantity > 0; fee may be negative (a rebate)."""

    fill_id: str
    account_id: str
    symbol: str
    side: Side
    price: Decimal
    quantity: Decimal
    fee: Decimal
    fee_currency: str
    event_time_ns: int

    @property
    def signed_quantity(self) -> Decimal:
        return self.quantity if self.side is Side.BUY else -self.quantity

    def fee_in_quote(self) -> Decimal:
        """The fee in the symbol's quote asset: a base-asset fee is converted at the fill price; a fee in a third
        asset (no rate known here) is taken at face value."""
        base, quote = split_symbol(self.symbol)
        currency = self.fee_currency.upper()
        if currency and currency != quote and currency == base:
            return q18(_CTX.multiply(self.fee, self.price))
        return self.fee


@dataclass(frozen=True, slots=True)
class Position:
    """An account's net position in one symbol. Immutable: applying a fill returns a new Position."""

    account_id: str
    symbol: str
    quantity: Decimal = ZERO
    avg_entry_price: Decimal | None = None
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    bought_quantity: Decimal = ZERO
    sold_quantity: Decimal = ZERO
    fill_count: int = 0
    last_fill_id: str = ""
    update_time_ns: int = 0
    version: int = 0

    @property
    def cost_basis(self) -> Decimal:
        return ZERO if self.avg_entry_price is None else q18(_CTX.multiply(self.quantity, self.avg_entry_price))

    @property
    def is_flat(self) -> bool:
        return self.quantity == 0

    def economics(self) -> tuple[object, ...]:
        """What reconciliation compares (everything but bookkeeping of when and in which version)."""
        return (
            self.quantity,
            self.avg_entry_price,
            self.realized_pnl,
            self.fees,
            self.bought_quantity,
            self.sold_quantity,
            self.fill_count,
        )

    def apply(self, fill: FillRecord) -> Position:
        qty, avg, realized = _net(self.quantity, self.avg_entry_price, self.realized_pnl, fill)
        return replace(
            self,
            quantity=qty,
            avg_entry_price=avg,
            realized_pnl=realized,
            fees=q18(self.fees + fill.fee_in_quote()),
            bought_quantity=self.bought_quantity + (fill.quantity if fill.side is Side.BUY else ZERO),
            sold_quantity=self.sold_quantity + (fill.quantity if fill.side is Side.SELL else ZERO),
            fill_count=self.fill_count + 1,
            last_fill_id=fill.fill_id,
            update_time_ns=max(self.update_time_ns, fill.event_time_ns),
            version=self.version + 1,
        )


def _net(
    position: Decimal, avg: Decimal | None, realized: Decimal, fill: FillRecord
) -> tuple[Decimal, Decimal | None, Decimal]:
    """(quantity, avg entry price, realized PnL) after the fill."""
    signed = fill.signed_quantity
    new_qty = position + signed
    if position == 0 or (position > 0) == (signed > 0):
        old_cost = _CTX.multiply(abs(position), avg or ZERO)
        added = _CTX.multiply(fill.quantity, fill.price)
        return new_qty, q18(_CTX.divide(old_cost + added, abs(new_qty))), realized
    assert avg is not None
    closed = min(fill.quantity, abs(position))
    direction = Decimal(1) if position > 0 else Decimal(-1)
    realized = q18(realized + _CTX.multiply(_CTX.multiply(closed, fill.price - avg), direction))
    if new_qty == 0:
        return ZERO, None, realized
    if (new_qty > 0) != (position > 0):
        return new_qty, fill.price, realized  # flipped: the rest opens at the fill price
    return new_qty, avg, realized


@dataclass(frozen=True, slots=True)
class PositionChange:
    """A position after one fill (or a reconciliation), with the fill's JetStream sequence."""

    position: Position
    fill_id: str
    reconciliation: bool = False
    stream_sequence: int = 0

    @property
    def event_id(self) -> str:
        p = self.position
        return f"{p.account_id}:{p.symbol}:{p.version}"


@dataclass(frozen=True, slots=True)
class LoggedFill:
    """A fill read from the log with its JetStream stream sequence."""

    sequence: int
    fill: FillRecord


@dataclass(frozen=True, slots=True)
class PositionDifference:
    """A symbol whose stored and recomputed positions differ."""

    symbol: str
    stored: Position | None
    recomputed: Position
    quantity_difference: Decimal
    mismatched_fill_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    differences: tuple[PositionDifference, ...]
    symbols_checked: int
    fills_replayed: int
    applied: bool
    fill_log_sequence: int
