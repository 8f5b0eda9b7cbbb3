"""The PnL ledger: cells per (account, symbol, strategy), marks per symbol, idempotent by fill id."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from services.pnl.domain.model import (
    ZERO,
    Cell,
    FillRecord,
    Mark,
    PnlBreakdown,
    PnlFigures,
    Snapshot,
    SnapshotKind,
    split_symbol,
    trading_day,
)

Key = tuple[str, str, str]


class PnlLedger:
    def __init__(self, reporting_currency: str = "USDT") -> None:
        self._cells: dict[Key, Cell] = {}
        self._by_symbol: dict[str, list[Cell]] = {}
        self._applied: set[str] = set()
        # Per cell, the highest FILLS stream sequence of a fill applied to it.
        self._sequences: dict[Key, int] = {}
        self._marks: dict[str, Mark] = {}
        self._currency = reporting_currency
        # Highest as_of handed out per account, so snapshot ids stay unique even for fills at the same instant.
        self._last_as_of: dict[str, int] = {}

    def apply(self, fill: FillRecord) -> bool:
        """Apply a fill once; False for a fill id already applied."""
        if fill.fill_id in self._applied:
            return False
        self._applied.add(fill.fill_id)
        key = (fill.account_id, fill.symbol, fill.strategy_id)
        cell = self._cells.get(key)
        if cell is None:
            cell = self._cells[key] = Cell(*key)
            self._by_symbol.setdefault(fill.symbol, []).append(cell)
        mark = self._marks.get(fill.symbol)
        cell.start_day(trading_day(fill.event_time_ns), mark.price if mark else None)
        cell.apply(fill)
        self._sequences[key] = max(self._sequences.get(key, 0), fill.sequence)
        return True

    def late(self, fills: Iterable[FillRecord]) -> set[Key]:
        """Cells that a new fill among these reaches out of log order: a fill logged before one already applied to
        the same cell (a JetStream redelivery). Average-cost PnL depends on the order of fills; the log's counts."""
        highest = dict(self._sequences)
        late: set[Key] = set()
        for fill in fills:
            if fill.fill_id in self._applied or not fill.sequence:
                continue
            key = (fill.account_id, fill.symbol, fill.strategy_id)
            if fill.sequence < highest.get(key, 0):
                late.add(key)
            highest[key] = max(highest.get(key, 0), fill.sequence)
        return late

    def sequence_of(self, key: Key) -> int:
        return self._sequences.get(key, 0)

    def recompute(self, key: Key, logged: Iterable[FillRecord]) -> int:
        """Rebuild a cell from its fills in log order (those of other cells are skipped); returns how many."""
        fills = [f for f in logged if (f.account_id, f.symbol, f.strategy_id) == key]
        cell = self._cells.get(key)
        if cell is None:
            cell = self._cells[key] = Cell(*key)
            self._by_symbol.setdefault(key[1], []).append(cell)
        cell.recompute(fills)
        self._applied.update(f.fill_id for f in fills)
        self._sequences[key] = max((f.sequence for f in fills), default=0)
        return len(fills)

    def __contains__(self, fill_id: str) -> bool:
        return fill_id in self._applied

    def set_mark(self, symbol: str, price: Decimal, time_ns: int) -> set[str]:
        """Record a mark; returns the accounts with an open position in the symbol (their PnL moved)."""
        old = self._marks.get(symbol)
        if old is not None and old.time_ns > time_ns:
            return set()  # out of order: keep the newer mark
        self._marks[symbol] = Mark(price, time_ns)
        if old is not None and old.price == price:
            return set()
        return {c.account_id for c in self._by_symbol.get(symbol, ()) if c.quantity != 0}

    def mark(self, symbol: str) -> Mark | None:
        return self._marks.get(symbol)

    def symbols(self) -> set[str]:
        return set(self._by_symbol)

    def accounts(self) -> set[str]:
        return {c.account_id for c in self._cells.values()}

    def roll_day(self, day: str) -> None:
        """Start a new trading day for every cell (its day PnL baseline = its net PnL now)."""
        for cell in self._cells.values():
            mark = self._marks.get(cell.symbol)
            cell.start_day(day, mark.price if mark else None)

    def _cells_of(self, account_id: str, symbol: str = "", strategy_id: str = "") -> list[Cell]:
        return sorted(
            (
                c
                for c in self._cells.values()
                if c.account_id == account_id
                and (not symbol or c.symbol == symbol)
                and (not strategy_id or c.strategy_id == strategy_id)
            ),
            key=lambda c: (c.symbol, c.strategy_id),
        )

    def _figures(
        self, account_id: str, symbol: str, strategy_id: str, cells: Iterable[Cell], as_of_ns: int, today: str
    ) -> PnlFigures:
        cells = list(cells)
        realized = unrealized = fees = day_net = quantity = ZERO
        quotes = set()
        for cell in cells:
            mark = self._marks.get(cell.symbol)
            price = mark.price if mark else None
            realized += cell.realized_pnl
            unrealized += cell.unrealized(price)
            fees += cell.fees
            net = cell.net(price)
            day_net += net - cell.day_start_net if cell.day == today else ZERO
            quantity += cell.quantity
            quotes.add(split_symbol(cell.symbol)[1])
        single = bool(symbol)
        mark = self._marks.get(symbol) if single else None
        currency = quotes.pop() if len(quotes) == 1 else (split_symbol(symbol)[1] if single else self._currency)
        return PnlFigures(
            account_id=account_id,
            symbol=symbol,
            strategy_id=strategy_id,
            currency=currency or self._currency,
            realized_pnl=realized,
            unrealized_pnl=unrealized,
            fees=fees,
            net_pnl=realized + unrealized - fees,
            day_net_pnl=day_net,
            position_quantity=quantity if single else None,
            mark_price=mark.price if mark else None,
            mark_time_ns=mark.time_ns if mark else 0,
            as_of_time_ns=as_of_ns,
        )

    def breakdown(self, account_id: str, symbol: str, strategy_id: str, as_of_ns: int, day: str = "") -> PnlBreakdown:
        """The selection's total and its breakdowns by symbol and by strategy (each ordered). Day PnL is that of
        `day` (default: the trading day of as_of_ns)."""
        day = day or trading_day(as_of_ns)
        cells = self._cells_of(account_id, symbol, strategy_id)
        total = self._figures(account_id, symbol, strategy_id, cells, as_of_ns, day)
        by_symbol = tuple(
            self._figures(account_id, s, strategy_id, [c for c in cells if c.symbol == s], as_of_ns, day)
            for s in sorted({c.symbol for c in cells})
        )
        by_strategy = tuple(
            self._figures(account_id, symbol, g, [c for c in cells if c.strategy_id == g], as_of_ns, day)
            for g in sorted({c.strategy_id for c in cells})
        )
        return PnlBreakdown(total, by_symbol, by_strategy)

    def next_as_of(self, account_id: str, time_ns: int) -> int:
        """A snapshot time for the account after every one handed out, so intraday snapshot ids never collide
        (deterministic: replaying the same fills yields the same times)."""
        as_of = max(time_ns, self._last_as_of.get(account_id, 0) + 1)
        self._last_as_of[account_id] = as_of
        return as_of

    def snapshot(
        self,
        account_id: str,
        kind: SnapshotKind,
        as_of_ns: int,
        fill_id: str = "",
        symbol: str = "",
        strategy_id: str = "",
        day: str = "",
    ) -> Snapshot:
        day = day or trading_day(as_of_ns)
        view = self.breakdown(account_id, symbol, strategy_id, as_of_ns, day)
        return Snapshot(kind, account_id, day, as_of_ns, view.total, view.by_symbol, fill_id)
