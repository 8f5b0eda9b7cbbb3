"""Per-symbol limit order book state, top of book, depth snapshots, and a replica rebuilt from deltas.

Layout (chosen for CPython speed, see the engine for the matching rules):

- ``bids`` / ``asks``: dict price -> ``Level``; a level holds a FIFO ``deque`` of orders (time priority), its open
  quantity and its live order count. A canceled order stays in its deque as a dead entry (leaves == 0) and is
  skipped when it reaches the front; a level whose deque gets mostly dead is compacted.
- ``bid_heap`` (negated prices) / ``ask_heap``: heaps of the prices present in the dicts, with lazy deletion. The
  engine keeps one invariant: the top of each heap is a level with open quantity, so the best price is ``heap[0]``.
  A level that empties elsewhere stays (empty) in its dict and heap until it reaches the top.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

from services.prism.domain.events import BOOK, Event
from services.prism.domain.instruments import Instrument
from services.prism.domain.orders import BUY, Order


class Level:
    """One price level: FIFO of orders, open quantity, live order count."""

    __slots__ = ("n", "orders", "qty")

    def __init__(self) -> None:
        self.qty = 0
        self.n = 0
        self.orders: deque[Order] = deque()


class TopOfBook(NamedTuple):
    """Best bid and ask (0 price and quantity when a side is empty)."""

    symbol: str
    update_id: int
    bid_price: int
    bid_qty: int
    bid_count: int
    ask_price: int
    ask_qty: int
    ask_count: int


class BookSnapshot(NamedTuple):
    """Aggregated levels, best first, as ``(price, qty, order_count)``, and the last update id they include."""

    symbol: str
    update_id: int
    bids: list[tuple[int, int, int]]
    asks: list[tuple[int, int, int]]


class Book:
    """The state of one instrument's book (mutated only by the engine)."""

    __slots__ = (
        "ask_heap",
        "asks",
        "bid_heap",
        "bids",
        "buy_stops",
        "index",
        "instrument",
        "last",
        "lot",
        "maker_ppm",
        "min_notional",
        "sell_stops",
        "seq",
        "spare",
        "stops_live",
        "symbol",
        "taker_ppm",
        "tick",
        "trade_id",
    )

    def __init__(self, instrument: Instrument, index: int, maker_ppm: int = 0, taker_ppm: int = 0) -> None:
        self.instrument = instrument
        self.symbol = instrument.symbol
        self.index = index
        self.tick = instrument.tick
        self.lot = instrument.lot
        self.min_notional = instrument.min_notional
        self.maker_ppm = maker_ppm  # fee rates of orders without a per-owner tier
        self.taker_ppm = taker_ppm
        self.bids: dict[int, Level] = {}
        self.asks: dict[int, Level] = {}
        self.bid_heap: list[int] = []  # -price
        self.ask_heap: list[int] = []
        self.buy_stops: list[tuple[int, int]] = []  # (stop price, order id): trigger when last >= stop
        self.sell_stops: list[tuple[int, int]] = []  # (-stop price, order id): trigger when last <= stop
        self.stops_live = 0
        self.spare: list[Level] = []  # emptied Level objects for reuse (levels come and go at the top all the time)
        self.seq = 0  # last book update id
        self.trade_id = 0  # last trade id
        self.last = 0  # last trade price (0: no trade yet)

    def best_bid(self) -> int:
        """Best bid price, 0 if none."""
        return -self.bid_heap[0] if self.bid_heap else 0

    def best_ask(self) -> int:
        """Best ask price, 0 if none."""
        return self.ask_heap[0] if self.ask_heap else 0

    def top(self) -> TopOfBook:
        """Best bid and ask with their quantities and order counts."""
        bp = bq = bn = ap = aq = an = 0
        if self.bid_heap:
            bp = -self.bid_heap[0]
            lvl = self.bids[bp]
            bq, bn = lvl.qty, lvl.n
        if self.ask_heap:
            ap = self.ask_heap[0]
            lvl = self.asks[ap]
            aq, an = lvl.qty, lvl.n
        return TopOfBook(self.symbol, self.seq, bp, bq, bn, ap, aq, an)

    def snapshot(self, depth: int = 0) -> BookSnapshot:
        """Aggregated levels, best first; ``depth`` levels per side (0 = all)."""
        bids = sorted(((p, lv.qty, lv.n) for p, lv in self.bids.items() if lv.qty), reverse=True)
        asks = sorted((p, lv.qty, lv.n) for p, lv in self.asks.items() if lv.qty)
        if depth:
            bids, asks = bids[:depth], asks[:depth]
        return BookSnapshot(self.symbol, self.seq, bids, asks)

    def resting_orders(self) -> int:
        """Number of live orders resting in the book."""
        return sum(lv.n for lv in self.bids.values()) + sum(lv.n for lv in self.asks.values())


class BookReplica:
    """A book rebuilt only from BOOK deltas (what a market-data consumer does); detects gaps in update ids."""

    def __init__(self, symbol: str, update_id: int = 0) -> None:
        self.symbol = symbol
        self.update_id = update_id
        self.bids: dict[int, tuple[int, int]] = {}
        self.asks: dict[int, tuple[int, int]] = {}

    @classmethod
    def from_snapshot(cls, snap: BookSnapshot) -> BookReplica:
        """Start from a snapshot; deltas with update ids above ``snap.update_id`` apply on top."""
        rep = cls(snap.symbol, snap.update_id)
        rep.bids = {p: (q, n) for p, q, n in snap.bids}
        rep.asks = {p: (q, n) for p, q, n in snap.asks}
        return rep

    def apply(self, event: Event) -> bool:
        """Apply one event; non-BOOK events, other symbols and already-seen ids are ignored.

        Returns False (and applies nothing) on a gap, i.e. when the update id is not the next one: resync then.
        """
        if event[0] != BOOK or event[1] != self.symbol:
            return True
        _, _, uid, side, price, qty, count = event
        if uid <= self.update_id:
            return True
        if uid != self.update_id + 1:
            return False
        self.update_id = uid
        levels = self.bids if side == BUY else self.asks
        if qty:
            levels[price] = (qty, count)
        else:
            levels.pop(price, None)
        return True

    def snapshot(self) -> BookSnapshot:
        """The replica's levels in the same form as ``Book.snapshot``."""
        bids = sorted(((p, q, n) for p, (q, n) in self.bids.items()), reverse=True)
        asks = sorted((p, q, n) for p, (q, n) in self.asks.items())
        return BookSnapshot(self.symbol, self.update_id, bids, asks)
