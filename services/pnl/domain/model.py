"""PnL cells and figures as exact Decimals.

A cell is the position of one (account, symbol, strategy) netted from its fills: increases move the average entry
price to the quantity-weighted average, reductions realize (price - avg) x closed quantity (sign-adjusted for
shorts) and keep the average, a fill through zero re-opens the rest at the fill price. Following the contract
(trade.type.v1.Pnl): realized_pnl is before fees, fees are positive when paid, and
net_pnl = realized_pnl + unrealized_pnl - fees, with unrealized_pnl = quantity x (mark - avg entry price).
Aggregates (per symbol, per strategy, per account) are sums of cells.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal
from enum import Enum

ZERO = Decimal(0)
_SCALE = Decimal("1E-18")
CTX = Context(prec=60, rounding=ROUND_HALF_EVEN)
QUOTE_ASSETS = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USD", "EUR", "BTC", "ETH", "BNB")
NS_PER_DAY = 86_400 * 1_000_000_000


def q18(value: Decimal) -> Decimal:
    return value.quantize(_SCALE, context=CTX)


def split_symbol(symbol: str) -> tuple[str, str]:
    """BTCUSDT -> ("BTC", "USDT"); an unknown quote gives (symbol, "")."""
    for quote in QUOTE_ASSETS:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    return symbol, ""


def trading_day(time_ns: int) -> str:
    """The UTC trading day of an instant, "YYYY-MM-DD"."""
    return dt.datetime.fromtimestamp(time_ns // 1_000_000_000, dt.UTC).date().isoformat()


def day_start_ns(day: str) -> int:
    date = dt.date.fromisoformat(day)
    return int(dt.datetime(date.year, date.month, date.day, tzinfo=dt.UTC).timestamp()) * 1_000_000_000


class Side(Enum):
    BUY = "buy"
    SELL = "sell"


class SnapshotKind(Enum):
    INTRADAY = "intraday"
    END_OF_DAY = "end_of_day"


@dataclass(frozen=True, slots=True)
class FillRecord:
    fill_id: str
    account_id: str
    symbol: str
    strategy_id: str
    side: Side
    price: Decimal
    quantity: Decimal
    fee: Decimal
    fee_currency: str
    event_time_ns: int
    sequence: int = 0  # the fill's FILLS stream sequence (0 when not read from the stream)

    @property
    def signed_quantity(self) -> Decimal:
        return self.quantity if self.side is Side.BUY else -self.quantity

    def fee_in_quote(self) -> Decimal:
        """A base-asset fee is converted at the fill price; a quote (or unknown third-asset) fee is taken as is."""
        base, quote = split_symbol(self.symbol)
        currency = self.fee_currency.upper()
        if currency and currency != quote and currency == base:
            return q18(CTX.multiply(self.fee, self.price))
        return self.fee


@dataclass(frozen=True, slots=True)
class Mark:
    price: Decimal
    time_ns: int


def mid(bid: Decimal | None, ask: Decimal | None) -> Decimal | None:
    """The mark of a quote: the mid when both sides are present, else no mark."""
    if bid is None or ask is None or bid <= 0 or ask <= 0:
        return None
    return q18(CTX.divide(bid + ask, Decimal(2)))


@dataclass(slots=True)
class Cell:
    """The netted position and PnL of one (account, symbol, strategy)."""

    account_id: str
    symbol: str
    strategy_id: str
    quantity: Decimal = ZERO
    avg_entry_price: Decimal | None = None
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    fill_count: int = 0
    last_price: Decimal | None = None
    # Day PnL baseline: the cell's net PnL at the start of `day`.
    day: str = ""
    day_start_net: Decimal = ZERO

    def unrealized(self, mark: Decimal | None) -> Decimal:
        if mark is None or self.avg_entry_price is None or self.quantity == 0:
            return ZERO
        return q18(CTX.multiply(self.quantity, mark - self.avg_entry_price))

    def net(self, mark: Decimal | None) -> Decimal:
        return self.realized_pnl + self.unrealized(mark) - self.fees

    def start_day(self, day: str, mark: Decimal | None) -> None:
        """Fix the day baseline at the current net PnL (marked at `mark`, else at the last fill price)."""
        if self.day != day:
            self.day_start_net = self.net(mark if mark is not None else self.last_price)
            self.day = day

    def recompute(self, fills: Iterable[FillRecord]) -> None:
        """Replace the position and PnL by those of these fills applied in order; the day baseline stays."""
        fresh = Cell(self.account_id, self.symbol, self.strategy_id)
        for fill in fills:
            fresh.apply(fill)
        self.quantity, self.avg_entry_price = fresh.quantity, fresh.avg_entry_price
        self.realized_pnl, self.fees = fresh.realized_pnl, fresh.fees
        self.fill_count, self.last_price = fresh.fill_count, fresh.last_price

    def apply(self, fill: FillRecord) -> None:
        signed = fill.signed_quantity
        position, avg = self.quantity, self.avg_entry_price
        new_qty = position + signed
        if position == 0 or (position > 0) == (signed > 0):
            cost = CTX.multiply(abs(position), avg or ZERO) + CTX.multiply(fill.quantity, fill.price)
            self.avg_entry_price = q18(CTX.divide(cost, abs(new_qty)))
        else:
            assert avg is not None
            closed = min(fill.quantity, abs(position))
            gain = CTX.multiply(closed, fill.price - avg)
            self.realized_pnl = q18(self.realized_pnl + (gain if position > 0 else -gain))
            if new_qty == 0:
                self.avg_entry_price = None
            elif (new_qty > 0) != (position > 0):
                self.avg_entry_price = fill.price
        self.quantity = new_qty
        self.fees = q18(self.fees + fill.fee_in_quote())
        self.fill_count += 1
        self.last_price = fill.price


@dataclass(frozen=True, slots=True)
class PnlFigures:
    """PnL of a selection (an account, narrowed to a symbol and/or a strategy, or a breakdown entry)."""

    account_id: str
    symbol: str
    strategy_id: str
    currency: str
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    fees: Decimal
    net_pnl: Decimal
    day_net_pnl: Decimal
    position_quantity: Decimal | None
    mark_price: Decimal | None
    mark_time_ns: int
    as_of_time_ns: int


@dataclass(frozen=True, slots=True)
class PnlBreakdown:
    total: PnlFigures
    by_symbol: tuple[PnlFigures, ...]
    by_strategy: tuple[PnlFigures, ...]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An account's PnL at one instant (trade.pnl.v1.PnlSnapshot)."""

    kind: SnapshotKind
    account_id: str
    trading_day: str
    as_of_time_ns: int
    total: PnlFigures
    by_symbol: tuple[PnlFigures, ...]
    fill_id: str = ""

    @property
    def snapshot_id(self) -> str:
        return f"{self.account_id}:{self.as_of_time_ns}:{self.kind.value}"
