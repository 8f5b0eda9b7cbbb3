"""In-memory state the checks read: last mids, positions and open orders, day PnL, order rate.

Fed by the adapters (market data, FILLS, ORDERS, PNL); every apply is idempotent so replays change nothing.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from services.risk.domain.model import OpenExposure, OpenOrder, Side

_ZERO = Decimal(0)


class MidBook:
    """Last mid per symbol; a mid older than max_age_ns counts as unknown (0 = never stale)."""

    def __init__(self, max_age_ns: int = 0) -> None:
        self._mids: dict[str, tuple[Decimal, int]] = {}
        self._max_age_ns = max_age_ns

    def update(self, symbol: str, mid: Decimal, at_ns: int) -> None:
        self._mids[symbol] = (mid, at_ns)

    def update_quote(self, symbol: str, bid: Decimal | None, ask: Decimal | None, at_ns: int) -> None:
        if bid is not None and ask is not None and bid > 0 and ask > 0:
            self.update(symbol, ((bid + ask) / 2).normalize(), at_ns)

    def mid(self, symbol: str, now_ns: int) -> Decimal | None:
        entry = self._mids.get(symbol)
        if entry is None:
            return None
        mid, at_ns = entry
        if self._max_age_ns and now_ns - at_ns > self._max_age_ns:
            return None
        return mid


@dataclass(slots=True)
class TrackedOrder:
    account_id: str
    symbol: str
    side: Side
    leaves_qty: Decimal
    version: int
    open: bool
    filled_qty: Decimal


class ExposureBook:
    """Net positions from fills (deduplicated by fill id) and open orders from the OMS's full order states."""

    def __init__(self) -> None:
        self._positions: dict[tuple[str, str], Decimal] = {}
        self._fill_ids: set[str] = set()
        self._orders: dict[str, TrackedOrder] = {}
        self._open_by_account: dict[str, dict[str, OpenOrder]] = {}
        # Open leaves and open-order count per (account, symbol, side), kept with every order event.
        self._leaves: dict[tuple[str, str, Side], tuple[int, Decimal]] = {}

    def apply_fill(self, fill_id: str, account_id: str, symbol: str, side: Side, quantity: Decimal) -> bool:
        if fill_id in self._fill_ids:
            return False
        self._fill_ids.add(fill_id)
        signed = quantity if side is Side.BUY else -quantity
        key = (account_id, symbol)
        self._positions[key] = self._positions.get(key, _ZERO) + signed
        return True

    def set_position(self, account_id: str, symbol: str, quantity: Decimal) -> None:
        self._positions[(account_id, symbol)] = quantity

    def apply_order(
        self,
        order_id: str,
        account_id: str,
        symbol: str,
        side: Side,
        leaves_qty: Decimal,
        is_open: bool,
        version: int,
        filled_qty: Decimal = _ZERO,
    ) -> bool:
        """Apply an order's full state; an older or equal version than the one held is ignored."""
        known = self._orders.get(order_id)
        if known is not None and version <= known.version:
            return False
        self._orders[order_id] = TrackedOrder(account_id, symbol, side, leaves_qty, version, is_open, filled_qty)
        open_orders = self._open_by_account.setdefault(account_id, {})
        previous = open_orders.pop(order_id, None)
        if previous is not None:
            self._add_leaves(previous, -1)
        if is_open and leaves_qty > 0:
            now_open = OpenOrder(order_id, account_id, symbol, side, leaves_qty, filled_qty)
            open_orders[order_id] = now_open
            self._add_leaves(now_open, 1)
        return True

    def _add_leaves(self, order: OpenOrder, sign: int) -> None:
        key = (order.account_id, order.symbol, order.side)
        count, leaves = self._leaves.get(key, (0, _ZERO))
        count += sign
        # Back to exactly zero when nothing is open: no rounding can accumulate across order lifetimes.
        self._leaves[key] = (count, leaves + sign * order.leaves_qty if count else _ZERO)

    def contents(self) -> tuple[dict[tuple[str, str], Decimal], list[str], dict[str, TrackedOrder]]:
        """Positions, counted fill ids and tracked orders: for a snapshot."""
        return dict(self._positions), list(self._fill_ids), dict(self._orders)

    def load(
        self, positions: Mapping[tuple[str, str], Decimal], fill_ids: Iterable[str], orders: Mapping[str, TrackedOrder]
    ) -> None:
        """Fill an empty book with a snapshot's contents (open orders and leaves are derived again)."""
        if self._orders or self._positions or self._fill_ids:
            raise ValueError("a snapshot loads into an empty book only")
        self._positions = dict(positions)
        self._fill_ids = set(fill_ids)
        for order_id, o in orders.items():
            self.apply_order(order_id, o.account_id, o.symbol, o.side, o.leaves_qty, o.open, o.version, o.filled_qty)

    def tracked_orders(self) -> int:
        return len(self._orders)

    def position(self, account_id: str, symbol: str) -> Decimal:
        return self._positions.get((account_id, symbol), _ZERO)

    def open_orders(self, account_id: str) -> Sequence[OpenOrder]:
        return list(self._open_by_account.get(account_id, {}).values())

    def open_exposure(self, account_id: str, symbol: str, amend_order_id: str = "") -> OpenExposure:
        """What the checks need of the account's open orders, without walking them."""
        open_orders = self._open_by_account.get(account_id, {})
        replaced = open_orders.get(amend_order_id) if amend_order_id else None
        return OpenExposure(
            len(open_orders),
            self._leaves.get((account_id, symbol, Side.BUY), (0, _ZERO))[1],
            self._leaves.get((account_id, symbol, Side.SELL), (0, _ZERO))[1],
            replaced if replaced is not None and replaced.symbol == symbol else None,
        )


def trading_day(now_ns: int) -> str:
    return dt.datetime.fromtimestamp(now_ns / 1e9, tz=dt.UTC).strftime("%Y-%m-%d")


class PnlBook:
    """The latest day net PnL per account; a snapshot of another trading day than today (UTC) is ignored."""

    def __init__(self) -> None:
        self._latest: dict[str, tuple[int, str, Decimal]] = {}

    def update(self, account_id: str, trading_day_: str, day_net_pnl: Decimal, as_of_ns: int) -> bool:
        known = self._latest.get(account_id)
        if known is not None and as_of_ns < known[0]:
            return False
        self._latest[account_id] = (as_of_ns, trading_day_, day_net_pnl)
        return True

    def day_net_pnl(self, account_id: str, now_ns: int) -> Decimal | None:
        known = self._latest.get(account_id)
        if known is None or known[1] != trading_day(now_ns):
            return None
        return known[2]


class RateWindow:
    """Approved orders per account over a sliding window."""

    def __init__(self, window_ns: int = 1_000_000_000) -> None:
        self._window_ns = window_ns
        self._events: dict[str, deque[int]] = {}

    def count(self, account_id: str, now_ns: int) -> int:
        events = self._events.get(account_id)
        if not events:
            return 0
        while events and events[0] <= now_ns - self._window_ns:
            events.popleft()
        return len(events)

    def record(self, account_id: str, now_ns: int) -> None:
        self._events.setdefault(account_id, deque()).append(now_ns)
