"""PRISM's matching engine: one price-time priority book per instrument, one engine-wide order id sequence.

Commands (``submit``, ``cancel``, ``amend``, ``advance``) run to completion and append what happened, in order, to
``events`` (raw tuples, see ``events.py``); ``drain()`` hands them over. Nothing in here reads a clock, a random
source or the iteration order of an unordered container, so the same commands always give the same events.

Rules
- Price-time priority; a trade prints at the resting (maker) order's price. Partial fills leave the rest working.
- MARKET (IOC or FOK), LIMIT, STOP (becomes a market order) and STOP_LIMIT (becomes a limit order). Stops trigger
  on the last trade price of their symbol: a buy stop when last >= stop price, a sell stop when last <= stop price;
  a stop entered when the last price is already through its stop price triggers at once. Triggered stops run in
  (stop price, entry) order after the command that moved the price, buy stops first.
- GTC, IOC (remainder EXPIRED), FOK (all or nothing, checked before any fill: EXPIRED FOK_NOT_FILLABLE), GTD
  (EXPIRED GTD_EXPIRED once ``advance(now_ns)`` reaches its expiry; the engine never reads a wall clock).
- Post-only: rejected (POST_ONLY_WOULD_TAKE) if it would cross on entry; an amend that would make it cross is
  refused the same way.
- Self-trade prevention, cancel newest: when an incoming order meets a resting order of the same owner, the
  incoming order's remainder is canceled (SELF_TRADE_PREVENTION); fills before that point stand.
- Amend (new total quantity and/or new limit price): a quantity decrease at the same price keeps time priority; a
  price change or a quantity increase loses it (the order goes to the back of the queue, and after a price change
  it may match on re-entry, as a taker). A new quantity not above the filled quantity is refused
  (TOO_LATE_TO_AMEND). The order keeps its id.
- Fees: maker and taker rates (ppm; per instrument, overridable per owner) on every fill, in notional units
  (``fees.py``).
- Book deltas: every change of a level's quantity or order count emits a BOOK event with the symbol's next update
  id; replaying them (``BookReplica``) rebuilds the book exactly.

Speed: orders are ``list[int]`` records, events plain tuples, and the hot paths (resting a limit order, matching,
canceling) are written out with locals instead of helper calls; that is where the time of a Python matching
engine goes, not into the data structures.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from heapq import heapify, heappop, heappush

from services.prism.domain.book import Book, BookSnapshot, Level, TopOfBook
from services.prism.domain.events import (
    ACCEPTED,
    AMEND_REJECTED,
    AMENDED,
    BOOK,
    CANCEL_REJECTED,
    CANCELED,
    EXPIRED,
    REJECTED,
    TRADE,
    TRIGGERED,
    Event,
)
from services.prism.domain.fees import FeeSchedule
from services.prism.domain.instruments import DEFAULT_INSTRUMENTS, Instrument
from services.prism.domain.orders import (
    BELOW_MIN_NOTIONAL,
    BUY,
    CANCEL_REQUESTED,
    EXPIRE_TIME_IN_PAST,
    FOK,
    FOK_NOT_FILLABLE,
    GTC,
    GTD,
    GTD_EXPIRED,
    INVALID_LOT_SIZE,
    INVALID_TICK_SIZE,
    IOC,
    IOC_REMAINDER,
    LIMIT,
    MARKET,
    NO_LIQUIDITY,
    O_BOOK,
    O_EXPIRE,
    O_ID,
    O_LEAVES,
    O_MAKER_PPM,
    O_OWNER,
    O_POST,
    O_PRICE,
    O_QTY,
    O_SIDE,
    O_STATE,
    O_STOP,
    O_TAKER_PPM,
    O_TIF,
    O_TYPE,
    ORDER_NOT_FOUND,
    POST_ONLY_WOULD_TAKE,
    RESTING,
    SELF_TRADE_PREVENTION,
    SELL,
    STOP,
    STOP_LIMIT,
    STOP_PENDING,
    TOO_LATE_TO_AMEND,
    TOO_LATE_TO_CANCEL,
    UNKNOWN_SYMBOL,
    VALIDATION_FAILED,
    Order,
    OrderState,
    OrderType,
    OrderView,
    Side,
    TimeInForce,
)

MAX_PRICE = (1 << 63) - 1
"""Prices and quantities must fit in int64 (the protobuf contracts); also the limit of a market buy."""

_COMPACT_SLACK = 16
"""A level queue is compacted when its dead entries (canceled orders) outnumber its live ones by this much."""


class MatchingEngine:
    """The matching engine. Not thread-safe: one task drives it (the servicer serializes commands)."""

    __slots__ = (
        "_book_list",
        "_books",
        "_fee_tiers",
        "_gtd",
        "_next_oid",
        "_orders",
        "events",
        "fees",
        "now",
    )

    def __init__(
        self,
        instruments: Iterable[Instrument] = DEFAULT_INSTRUMENTS,
        fees: FeeSchedule | None = None,
        now_ns: int = 0,
    ) -> None:
        self.events: list[Event] = []
        self.now = now_ns
        self.fees = fees or FeeSchedule()
        self._fee_tiers: dict[int, tuple[int, int]] = {}
        self._books: dict[str, Book] = {}
        self._book_list: list[Book] = []
        self._orders: dict[int, Order] = {}
        self._next_oid = 1
        self._gtd: list[tuple[int, int]] = []  # (expire ns, order id), lazy deletion
        for instrument in instruments:
            self.add_instrument(instrument)

    # --- configuration and queries ------------------------------------------------------------------------------

    def add_instrument(self, instrument: Instrument, fees: FeeSchedule | None = None) -> Book:
        """Open a book for an instrument, with its own fee schedule or the engine's."""
        if instrument.symbol in self._books:
            raise ValueError(f"duplicate instrument {instrument.symbol}")
        fees = fees or self.fees
        book = Book(instrument, len(self._book_list), fees.maker_ppm, fees.taker_ppm)
        self._books[instrument.symbol] = book
        self._book_list.append(book)
        return book

    def set_fee_tier(self, owner: int, maker_ppm: int, taker_ppm: int) -> None:
        """Per-owner fee rates (all instruments) for orders entered from now on; default: the book's schedule."""
        FeeSchedule(maker_ppm, taker_ppm)  # validates
        self._fee_tiers[owner] = (maker_ppm, taker_ppm)

    def drain(self) -> list[Event]:
        """Take the events emitted since the last drain."""
        events = self.events
        self.events = []
        return events

    @property
    def symbols(self) -> list[str]:
        """The instruments' symbols, in the order they were added."""
        return [b.symbol for b in self._book_list]

    def book(self, symbol: str) -> Book:
        """The book of a symbol (KeyError if unknown). Read only: mutate through the engine's commands."""
        return self._books[symbol]

    def top_of_book(self, symbol: str) -> TopOfBook:
        """Best bid and ask of a symbol."""
        return self._books[symbol].top()

    def snapshot(self, symbol: str, depth: int = 0) -> BookSnapshot:
        """Aggregated depth of a symbol, best first (``depth`` levels per side, 0 = all)."""
        return self._books[symbol].snapshot(depth)

    @property
    def open_orders(self) -> int:
        """Live orders: resting plus stops waiting for their trigger."""
        return len(self._orders)

    def order(self, order_id: int) -> OrderView | None:
        """A typed copy of a live (resting or stop-pending) order, None once it is done or if unknown."""
        o = self._orders.get(order_id)
        if o is None:
            return None
        return OrderView(
            order_id=o[O_ID],
            owner=o[O_OWNER],
            symbol=self._book_list[o[O_BOOK]].symbol,
            side=Side(o[O_SIDE]),
            order_type=OrderType(o[O_TYPE]),
            time_in_force=TimeInForce(o[O_TIF]),
            price=o[O_PRICE],
            qty=o[O_QTY],
            leaves_qty=o[O_LEAVES],
            cum_qty=o[O_QTY] - o[O_LEAVES],
            stop_price=o[O_STOP],
            expire_time_ns=o[O_EXPIRE],
            post_only=bool(o[O_POST]),
            state=OrderState(o[O_STATE]),
        )

    # --- commands ---------------------------------------------------------------------------------------------------

    def submit(
        self,
        symbol: str,
        owner: int,
        side: int,
        qty: int,
        price: int = 0,
        order_type: int = LIMIT,
        tif: int = GTC,
        stop_price: int = 0,
        expire_ns: int = 0,
        post_only: bool = False,
    ) -> int:
        """Enter an order; returns its id (assigned even when the order is rejected).

        ``price``/``stop_price``/``qty`` are fixed-point ints (see ``instruments.py``); ``side``, ``order_type`` and
        ``tif`` take the ``Side``/``OrderType``/``TimeInForce`` values; ``expire_ns`` is for GTD only.
        """
        oid = self._next_oid
        self._next_oid = oid + 1
        try:
            book = self._books[symbol]
        except KeyError:
            self.events.append((REJECTED, symbol, oid, owner, UNKNOWN_SYMBOL, ""))
            return oid
        # fast path: plain GTC/IOC limit and IOC market orders that validate, written as one jump chain (so CPython
        # specialises the int compares); anything else goes through _validate
        if not (
            (side == BUY or side == SELL)  # noqa: SIM109 (two compares beat building a tuple)
            and qty > 0
            and not qty % book.lot
            and not stop_price
            and not expire_ns
            and (
                (
                    order_type == LIMIT
                    and (tif == GTC or (tif == IOC and not post_only))
                    and price > 0
                    and not price % book.tick
                    and book.min_notional <= price * qty < MAX_PRICE
                )
                or (order_type == MARKET and tif == IOC and not price and not post_only and qty < MAX_PRICE)
            )
        ):
            reason, text, tif = self._validate(
                book, side, qty, price, order_type, tif, stop_price, expire_ns, post_only
            )
            if reason:
                self.events.append((REJECTED, symbol, oid, owner, reason, text))
                return oid
        ev = self.events
        if post_only and (
            (side == BUY and book.ask_heap and price >= book.ask_heap[0])
            or (side == SELL and book.bid_heap and price <= -book.bid_heap[0])
        ):
            ev.append((REJECTED, symbol, oid, owner, POST_ONLY_WOULD_TAKE, ""))
            return oid
        o = [oid, owner, side, price, qty, qty, order_type, tif, expire_ns, stop_price, post_only, RESTING, book.index,
             book.maker_ppm, book.taker_ppm]  # fmt: skip
        if self._fee_tiers and owner in self._fee_tiers:
            o[O_MAKER_PPM], o[O_TAKER_PPM] = self._fee_tiers[owner]
        ev.append((ACCEPTED, symbol, oid, owner, side, order_type, tif, price, qty, stop_price))
        if order_type > LIMIT or tif > IOC:  # stops, FOK, GTD
            self._enter_special(book, o)
            return oid
        if side == BUY:
            heap = book.ask_heap
            if heap and (order_type == MARKET or heap[0] <= price):
                trade_id = book.trade_id
                stp = self._take_buy(book, o, price if order_type == LIMIT else MAX_PRICE)
                if o[O_LEAVES]:
                    self._remainder(book, o, stp, qty)
            elif order_type == MARKET or tif == IOC:
                ev.append((EXPIRED, symbol, oid, owner, qty, NO_LIQUIDITY))
                return oid
            else:  # rests at once: the common case, written out
                levels = book.bids
                lvl = levels.get(price)
                if lvl is None:
                    lvl = levels[price] = book.spare.pop() if book.spare else Level()
                    heappush(book.bid_heap, -price)
                lvl.orders.append(o)
                lq = lvl.qty = lvl.qty + qty
                n = lvl.n = lvl.n + 1
                self._orders[oid] = o
                seq = book.seq = book.seq + 1
                ev.append((BOOK, symbol, seq, BUY, price, lq, n))
                return oid
        else:
            heap = book.bid_heap
            if heap and (order_type == MARKET or -heap[0] >= price):
                trade_id = book.trade_id
                stp = self._take_sell(book, o, price if order_type == LIMIT else 0)
                if o[O_LEAVES]:
                    self._remainder(book, o, stp, qty)
            elif order_type == MARKET or tif == IOC:
                ev.append((EXPIRED, symbol, oid, owner, qty, NO_LIQUIDITY))
                return oid
            else:
                levels = book.asks
                lvl = levels.get(price)
                if lvl is None:
                    lvl = levels[price] = book.spare.pop() if book.spare else Level()
                    heappush(book.ask_heap, price)
                lvl.orders.append(o)
                lq = lvl.qty = lvl.qty + qty
                n = lvl.n = lvl.n + 1
                self._orders[oid] = o
                seq = book.seq = book.seq + 1
                ev.append((BOOK, symbol, seq, SELL, price, lq, n))
                return oid
        if book.stops_live and book.trade_id != trade_id:
            self._run_stops(book)
        return oid

    def _enter_special(self, book: Book, o: Order) -> None:
        """The rest of ``submit`` for stop orders (wait for the trigger), FOK and GTD orders."""
        oid = o[O_ID]
        if o[O_TIF] == GTD:
            heappush(self._gtd, (o[O_EXPIRE], oid))
        if o[O_TYPE] > LIMIT:
            o[O_STATE] = STOP_PENDING
            self._orders[oid] = o
            if o[O_SIDE] == BUY:
                heappush(book.buy_stops, (o[O_STOP], oid))
            else:
                heappush(book.sell_stops, (-o[O_STOP], oid))
            book.stops_live += 1
            if book.last:
                self._run_stops(book)
            return
        trade_id = book.trade_id
        self._execute(book, o)
        if book.stops_live and book.trade_id != trade_id:
            self._run_stops(book)

    def cancel(self, order_id: int) -> bool:
        """Cancel a live order (resting or stop-pending). False, with a CANCEL_REJECTED event, otherwise."""
        o = self._orders.pop(order_id, None)
        if o is None:
            reason = TOO_LATE_TO_CANCEL if 0 < order_id < self._next_oid else ORDER_NOT_FOUND
            self.events.append((CANCEL_REJECTED, "", order_id, reason))
            return False
        book = self._book_list[o[O_BOOK]]
        leaves = o[O_LEAVES]
        o[O_LEAVES] = 0  # its queue entry is dead from now on
        ev = self.events
        symbol = book.symbol
        ev.append((CANCELED, symbol, order_id, o[O_OWNER], leaves, CANCEL_REQUESTED))
        if o[O_STATE] != RESTING:
            self._stop_gone(book)
            return True
        price = o[O_PRICE]
        side = o[O_SIDE]
        lvl = (book.bids if side == BUY else book.asks)[price]
        lq = lvl.qty = lvl.qty - leaves
        n = lvl.n = lvl.n - 1
        seq = book.seq = book.seq + 1
        ev.append((BOOK, symbol, seq, side, price, lq, n))
        if not n:
            if book.bid_heap[0] == -price if side == BUY else book.ask_heap[0] == price:
                self._tidy(book, side, price, lvl)  # the best level emptied
            else:
                lvl.orders.clear()
        elif len(lvl.orders) > 2 * n + _COMPACT_SLACK:
            self._tidy(book, side, price, lvl)
        return True

    def amend(self, order_id: int, new_qty: int = 0, new_price: int = 0) -> bool:
        """Change a live order's total quantity and/or limit price (0 keeps the current value).

        False, with an AMEND_REJECTED event, if refused; the order is then unchanged.
        """
        o = self._orders.get(order_id)
        ev = self.events
        if o is None:
            reason = TOO_LATE_TO_AMEND if 0 < order_id < self._next_oid else ORDER_NOT_FOUND
            ev.append((AMEND_REJECTED, "", order_id, reason))
            return False
        book = self._book_list[o[O_BOOK]]
        symbol = book.symbol
        price, qty, leaves, otype = o[O_PRICE], o[O_QTY], o[O_LEAVES], o[O_TYPE]
        cum = qty - leaves
        np = new_price or price
        nq = new_qty or qty
        priced = otype in (LIMIT, STOP_LIMIT)
        reason = ""
        if new_price < 0 or new_qty < 0 or nq >= MAX_PRICE or np >= MAX_PRICE or (new_price and not priced):
            reason = VALIDATION_FAILED
        elif np % book.tick:
            reason = INVALID_TICK_SIZE
        elif nq % book.lot:
            reason = INVALID_LOT_SIZE
        elif nq <= cum:
            reason = TOO_LATE_TO_AMEND
        elif priced and np * nq < book.min_notional:
            reason = BELOW_MIN_NOTIONAL
        elif (
            o[O_POST]
            and np != price
            and (
                (o[O_SIDE] == BUY and book.ask_heap and np >= book.ask_heap[0])
                or (o[O_SIDE] == SELL and book.bid_heap and np <= -book.bid_heap[0])
            )
        ):
            reason = POST_ONLY_WOULD_TAKE
        if reason:
            ev.append((AMEND_REJECTED, symbol, order_id, reason))
            return False
        new_leaves = nq - cum
        if o[O_STATE] == STOP_PENDING:
            o[O_PRICE], o[O_QTY], o[O_LEAVES] = np, nq, new_leaves
            ev.append((AMENDED, symbol, order_id, o[O_OWNER], np, nq, new_leaves, True))
            return True
        if np == price and nq <= qty:
            ev.append((AMENDED, symbol, order_id, o[O_OWNER], np, nq, new_leaves, True))
            if nq < qty:
                o[O_QTY], o[O_LEAVES] = nq, new_leaves
                side = o[O_SIDE]
                lvl = (book.bids if side == BUY else book.asks)[price]
                lvl.qty -= qty - nq
                book.seq += 1
                ev.append((BOOK, symbol, book.seq, side, price, lvl.qty, lvl.n))
            return True
        # loses priority: the old queue entry dies, a fresh record re-enters (and may match after a price change)
        del self._orders[order_id]
        o[O_LEAVES] = 0
        ev.append((AMENDED, symbol, order_id, o[O_OWNER], np, nq, new_leaves, False))
        self._unlink(book, o, leaves)
        fresh = o.copy()
        fresh[O_PRICE], fresh[O_QTY], fresh[O_LEAVES], fresh[O_STATE] = np, nq, new_leaves, 0
        trade_id = book.trade_id
        self._execute(book, fresh)
        if book.stops_live and book.trade_id != trade_id:
            self._run_stops(book)
        return True

    def advance(self, now_ns: int) -> None:
        """Move the engine's clock forward (never back) and expire the GTD orders whose time has come."""
        if now_ns > self.now:
            self.now = now_ns
        gtd = self._gtd
        orders = self._orders
        while gtd and gtd[0][0] <= self.now:
            expire, oid = heappop(gtd)
            o = orders.get(oid)
            if o is None or o[O_EXPIRE] != expire:
                continue
            del orders[oid]
            book = self._book_list[o[O_BOOK]]
            leaves = o[O_LEAVES]
            o[O_LEAVES] = 0
            self.events.append((EXPIRED, book.symbol, oid, o[O_OWNER], leaves, GTD_EXPIRED))
            if o[O_STATE] == RESTING:
                self._unlink(book, o, leaves)
            else:
                self._stop_gone(book)

    # --- internals ---------------------------------------------------------------------------------------------------

    def _validate(
        self,
        book: Book,
        side: int,
        qty: int,
        price: int,
        order_type: int,
        tif: int,
        stop_price: int,
        expire_ns: int,
        post_only: bool,
    ) -> tuple[str, str, int]:
        """(reason, text, effective tif); reason is empty when the order is valid."""
        if side != BUY and side != SELL:
            return VALIDATION_FAILED, "side must be BUY or SELL", tif
        if qty <= 0 or qty >= MAX_PRICE:
            return VALIDATION_FAILED, "quantity must be > 0 (and fit int64)", tif
        if qty % book.lot:
            return INVALID_LOT_SIZE, f"quantity is not a multiple of the lot size {book.lot}", tif
        if price < 0 or price >= MAX_PRICE or stop_price < 0 or stop_price >= MAX_PRICE:
            return VALIDATION_FAILED, "prices must be >= 0 and fit int64", tif
        if order_type == MARKET:
            if price or stop_price:
                return VALIDATION_FAILED, "a market order takes no limit or stop price", tif
            tif = tif or IOC
            if tif != IOC and tif != FOK:
                return VALIDATION_FAILED, "a market order must be IOC or FOK", tif
        elif order_type in (LIMIT, STOP_LIMIT, STOP):
            tif = tif or GTC
            if order_type == LIMIT:
                if stop_price:
                    return VALIDATION_FAILED, "a limit order takes no stop price", tif
            else:
                if not stop_price:
                    return VALIDATION_FAILED, "a stop order needs a stop price", tif
                if stop_price % book.tick:
                    return INVALID_TICK_SIZE, f"stop price is not a multiple of the tick size {book.tick}", tif
            if order_type == STOP:
                if price:
                    return VALIDATION_FAILED, "a stop (market) order takes no limit price", tif
                if stop_price * qty < book.min_notional:
                    return BELOW_MIN_NOTIONAL, "stop price x quantity is below the minimum notional", tif
            else:
                if not price:
                    return VALIDATION_FAILED, "a limit price is required", tif
                if price % book.tick:
                    return INVALID_TICK_SIZE, f"price is not a multiple of the tick size {book.tick}", tif
                if price * qty < book.min_notional:
                    return BELOW_MIN_NOTIONAL, "price x quantity is below the minimum notional", tif
                if price * qty >= MAX_PRICE:
                    return VALIDATION_FAILED, "price x quantity must fit int64", tif
        else:
            return VALIDATION_FAILED, "unknown order type", tif
        if tif != GTC and tif != IOC and tif != FOK and tif != GTD:
            return VALIDATION_FAILED, "unknown time in force", tif
        if tif == GTD:
            if expire_ns <= self.now:
                return EXPIRE_TIME_IN_PAST, "GTD expire time is not in the future", tif
        elif expire_ns:
            return VALIDATION_FAILED, "expire_time_ns is only for GTD orders", tif
        if post_only and (order_type != LIMIT or (tif != GTC and tif != GTD)):
            return VALIDATION_FAILED, "post_only is only for GTC/GTD limit orders", tif
        return "", "", tif

    def _execute(self, book: Book, o: Order) -> None:
        """Match a FOK, re-entering (amended) or triggered order, then rest, expire or cancel its remainder."""
        side = o[O_SIDE]
        otype = o[O_TYPE]
        limit = o[O_PRICE] if otype in (LIMIT, STOP_LIMIT) else (MAX_PRICE if side == BUY else 0)
        start = o[O_LEAVES]
        if o[O_TIF] == FOK and not self._fok_fillable(book, o, limit):
            self.events.append((EXPIRED, book.symbol, o[O_ID], o[O_OWNER], start, FOK_NOT_FILLABLE))
            o[O_LEAVES] = 0
            return
        stp = False
        if side == BUY:
            if book.ask_heap and book.ask_heap[0] <= limit:
                stp = self._take_buy(book, o, limit)
        elif book.bid_heap and -book.bid_heap[0] >= limit:
            stp = self._take_sell(book, o, limit)
        self._remainder(book, o, stp, start)

    def _remainder(self, book: Book, o: Order, stp: bool, start: int) -> None:
        """After matching: cancel (self-trade prevention), expire (market/IOC/FOK) or rest what is left."""
        leaves = o[O_LEAVES]
        if not leaves:
            return
        if stp:
            self.events.append((CANCELED, book.symbol, o[O_ID], o[O_OWNER], leaves, SELF_TRADE_PREVENTION))
            o[O_LEAVES] = 0
        elif o[O_TYPE] in (MARKET, STOP) or o[O_TIF] in (IOC, FOK):
            reason = NO_LIQUIDITY if leaves == start else IOC_REMAINDER
            self.events.append((EXPIRED, book.symbol, o[O_ID], o[O_OWNER], leaves, reason))
            o[O_LEAVES] = 0
        else:
            self._rest(book, o)

    def _rest(self, book: Book, o: Order) -> None:
        """Put a non-crossing order at the back of its price level."""
        side = o[O_SIDE]
        price = o[O_PRICE]
        if side == BUY:
            levels = book.bids
            lvl = levels.get(price)
            if lvl is None:
                lvl = levels[price] = book.spare.pop() if book.spare else Level()
                heappush(book.bid_heap, -price)
        else:
            levels = book.asks
            lvl = levels.get(price)
            if lvl is None:
                lvl = levels[price] = book.spare.pop() if book.spare else Level()
                heappush(book.ask_heap, price)
        lvl.orders.append(o)
        lvl.qty += o[O_LEAVES]
        lvl.n += 1
        o[O_STATE] = RESTING
        self._orders[o[O_ID]] = o
        book.seq += 1
        self.events.append((BOOK, book.symbol, book.seq, side, price, lvl.qty, lvl.n))

    def _unlink(self, book: Book, o: Order, leaves: int) -> None:
        """Take a resting order (already marked dead: leaves 0) out of its level's totals."""
        side = o[O_SIDE]
        price = o[O_PRICE]
        lvl = (book.bids if side == BUY else book.asks)[price]
        lq = lvl.qty = lvl.qty - leaves
        n = lvl.n = lvl.n - 1
        book.seq += 1
        self.events.append((BOOK, book.symbol, book.seq, side, price, lq, n))
        if not n or len(lvl.orders) > 2 * n + _COMPACT_SLACK:
            self._tidy(book, side, price, lvl)

    @staticmethod
    def _tidy(book: Book, side: int, price: int, lvl: Level) -> None:
        """A level lost orders: drop it if it was the best and is now empty (keeping the heap-top invariant), else
        drop its dead entries when they are all or most of its queue."""
        if lvl.n:
            lvl.orders = deque(x for x in lvl.orders if x[O_LEAVES])
            return
        if side == BUY:
            heap, levels, key = book.bid_heap, book.bids, -price
        else:
            heap, levels, key = book.ask_heap, book.asks, price
        if heap[0] != key:
            lvl.orders.clear()  # an empty level below the top: it stays (empty) until it reaches the top
            return
        spare = book.spare
        heappop(heap)
        del levels[price]
        lvl.orders.clear()
        spare.append(lvl)
        while heap:
            top = -heap[0] if side == BUY else heap[0]
            lvl = levels[top]
            if lvl.n:
                break
            heappop(heap)
            del levels[top]
            lvl.orders.clear()
            spare.append(lvl)

    def _stop_gone(self, book: Book) -> None:
        """A pending stop left (canceled or expired): its heap entry is now stale; compact when mostly stale."""
        book.stops_live -= 1
        live = book.stops_live
        if len(book.buy_stops) + len(book.sell_stops) > 2 * live + _COMPACT_SLACK:
            orders = self._orders
            book.buy_stops = [e for e in book.buy_stops if e[1] in orders]
            book.sell_stops = [e for e in book.sell_stops if e[1] in orders]
            heapify(book.buy_stops)
            heapify(book.sell_stops)

    def _run_stops(self, book: Book) -> None:
        """Trigger every stop the last trade price has reached, including those reached by triggered stops."""
        orders = self._orders
        while True:
            last = book.last
            if not last:
                return
            buy_stops, sell_stops = book.buy_stops, book.sell_stops
            if buy_stops and buy_stops[0][0] <= last:
                oid = heappop(buy_stops)[1]
            elif sell_stops and -sell_stops[0][0] >= last:
                oid = heappop(sell_stops)[1]
            else:
                return
            o = orders.get(oid)
            if o is None or o[O_STATE] != STOP_PENDING:
                continue
            del orders[oid]
            book.stops_live -= 1
            o[O_STATE] = 0
            self.events.append((TRIGGERED, book.symbol, oid, o[O_OWNER], o[O_STOP], last))
            self._execute(book, o)

    def _fok_fillable(self, book: Book, o: Order, limit: int) -> bool:
        """Whether the whole open quantity can fill now within ``limit`` before meeting an own order (STP)."""
        need = o[O_LEAVES]
        owner = o[O_OWNER]
        if o[O_SIDE] == BUY:
            levels = book.asks
            prices = sorted(p for p, lv in levels.items() if lv.n and p <= limit)
        else:
            levels = book.bids
            prices = sorted((p for p, lv in levels.items() if lv.n and p >= limit), reverse=True)
        for p in prices:
            for mo in levels[p].orders:
                ml = mo[O_LEAVES]
                if not ml:
                    continue
                if mo[O_OWNER] == owner:
                    return False
                need -= ml
                if need <= 0:
                    return True
        return False

    def _take_buy(self, book: Book, o: Order, limit: int) -> bool:
        """Match a buy against the asks up to ``limit``; returns True if stopped by self-trade prevention."""
        ev = self.events
        orders = self._orders
        heap = book.ask_heap
        levels = book.asks
        symbol = book.symbol
        owner = o[O_OWNER]
        toid = o[O_ID]
        tqty = o[O_QTY]
        trate = o[O_TAKER_PPM]
        leaves = o[O_LEAVES]
        tid = book.trade_id
        seq = book.seq
        spare = book.spare
        stp = False
        while heap:
            p = heap[0]
            if p > limit:
                break
            lvl = levels[p]
            q = lvl.orders
            at_level = leaves
            done = 0
            while q:
                mo = q[0]
                ml = mo[O_LEAVES]
                if not ml:  # a canceled order's dead entry
                    q.popleft()
                    continue
                mown = mo[O_OWNER]
                if mown == owner:
                    stp = True
                    break
                tid += 1
                if ml > leaves:  # the taker is done, the maker keeps the rest
                    ml -= leaves
                    mo[O_LEAVES] = ml
                    n = p * leaves
                    ev.append((TRADE, symbol, tid, p, leaves, BUY,
                               mo[O_ID], mown, mo[O_QTY] - ml, ml, (n * mo[O_MAKER_PPM] + 999_999) // 1_000_000,
                               toid, owner, tqty, 0, (n * trate + 999_999) // 1_000_000))  # fmt: skip
                    leaves = 0
                    break
                leaves -= ml  # the maker is done
                mo[O_LEAVES] = 0
                n = p * ml
                moid = mo[O_ID]
                ev.append((TRADE, symbol, tid, p, ml, BUY,
                           moid, mown, mo[O_QTY], 0, (n * mo[O_MAKER_PPM] + 999_999) // 1_000_000,
                           toid, owner, tqty - leaves, leaves, (n * trate + 999_999) // 1_000_000))  # fmt: skip
                q.popleft()
                del orders[moid]
                done += 1
                if not leaves:
                    break
            if at_level != leaves:
                lq = lvl.qty = lvl.qty - (at_level - leaves)
                cnt = lvl.n = lvl.n - done
                seq += 1
                ev.append((BOOK, symbol, seq, SELL, p, lq, cnt))
                book.last = p
            if not lvl.n:  # the best level is used up (the guard also covers a level of dead entries only)
                del levels[p]
                heappop(heap)
                q.clear()
                spare.append(lvl)
                while heap:
                    lvl = levels[heap[0]]
                    if lvl.n:
                        break
                    del levels[heappop(heap)]
                    lvl.orders.clear()
                    spare.append(lvl)
            if stp or not leaves:
                break
        book.trade_id = tid
        book.seq = seq
        o[O_LEAVES] = leaves
        return stp

    def _take_sell(self, book: Book, o: Order, limit: int) -> bool:
        """Match a sell against the bids down to ``limit``; returns True if stopped by self-trade prevention."""
        ev = self.events
        orders = self._orders
        heap = book.bid_heap
        levels = book.bids
        symbol = book.symbol
        owner = o[O_OWNER]
        toid = o[O_ID]
        tqty = o[O_QTY]
        trate = o[O_TAKER_PPM]
        leaves = o[O_LEAVES]
        tid = book.trade_id
        seq = book.seq
        spare = book.spare
        stp = False
        while heap:
            p = -heap[0]
            if p < limit:
                break
            lvl = levels[p]
            q = lvl.orders
            at_level = leaves
            done = 0
            while q:
                mo = q[0]
                ml = mo[O_LEAVES]
                if not ml:  # a canceled order's dead entry
                    q.popleft()
                    continue
                mown = mo[O_OWNER]
                if mown == owner:
                    stp = True
                    break
                tid += 1
                if ml > leaves:  # the taker is done, the maker keeps the rest
                    ml -= leaves
                    mo[O_LEAVES] = ml
                    n = p * leaves
                    ev.append((TRADE, symbol, tid, p, leaves, SELL,
                               mo[O_ID], mown, mo[O_QTY] - ml, ml, (n * mo[O_MAKER_PPM] + 999_999) // 1_000_000,
                               toid, owner, tqty, 0, (n * trate + 999_999) // 1_000_000))  # fmt: skip
                    leaves = 0
                    break
                leaves -= ml  # the maker is done
                mo[O_LEAVES] = 0
                n = p * ml
                moid = mo[O_ID]
                ev.append((TRADE, symbol, tid, p, ml, SELL,
                           moid, mown, mo[O_QTY], 0, (n * mo[O_MAKER_PPM] + 999_999) // 1_000_000,
                           toid, owner, tqty - leaves, leaves, (n * trate + 999_999) // 1_000_000))  # fmt: skip
                q.popleft()
                del orders[moid]
                done += 1
                if not leaves:
                    break
            if at_level != leaves:
                lq = lvl.qty = lvl.qty - (at_level - leaves)
                cnt = lvl.n = lvl.n - done
                seq += 1
                ev.append((BOOK, symbol, seq, BUY, p, lq, cnt))
                book.last = p
            if not lvl.n:  # the best level is used up (the guard also covers a level of dead entries only)
                del levels[p]
                heappop(heap)
                q.clear()
                spare.append(lvl)
                while heap:
                    lvl = levels[-heap[0]]
                    if lvl.n:
                        break
                    del levels[-heappop(heap)]
                    lvl.orders.clear()
                    spare.append(lvl)
            if stp or not leaves:
                break
        book.trade_id = tid
        book.seq = seq
        o[O_LEAVES] = leaves
        return stp
