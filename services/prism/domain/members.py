"""Member order entry at PRISM: accounts, their orders, and the execution log (plain Python: no grpc, no gen/).

A member order goes into the same ``MatchingEngine`` as the synthetic participants' orders, so members trade with
the participants (and with each other) in one book. Each member account gets an engine owner id below the
participants' (``SimulationConfig.first_owner``): self-trade prevention works per account.

``MemberDesk`` is the single place that drains the engine (``pump``): every drained event is first routed to the
member orders it concerns (turning into ``Execution`` records appended to the ``ExecutionLog``) and then kept in
``outbox`` for the feed, so the published feed sees member trades exactly like participant trades. The simulation
loop calls ``pump`` after each participant step; the member commands (``place``/``cancel``/``amend``) call it
themselves, so their response carries the executions they caused.

Numbers: requests carry decimal strings; they are converted here to the engine's fixed-point ints, and a value that
does not fit the instrument (price off the tick, quantity off the lot, notional below the minimum) is a field
violation (INVALID_ARGUMENT) before the engine sees it. Refusals that depend on the market or on the order's state
come from the engine: a post-only order that would take is REJECTED (an execution, status REJECTED); a cancel or
amend of a done order is FAILED_PRECONDITION (TOO_LATE_TO_CANCEL / TOO_LATE_TO_AMEND) and also streamed as a
CANCEL_REJECTED / REPLACE_REJECTED execution.

Idempotency: ``(account_id, client_order_id)`` names one order; placing it again returns the original order
(``replayed``), with a different specification it is ALREADY_EXISTS (DUPLICATE_CLIENT_ORDER_ID_MISMATCH).

``exec_sequence`` is engine-wide (+1 per execution) and starts after ``first_sequence``; venue order ids and
execution ids are derived from counters with the same base. A deployment passes a clock-derived base (microseconds
since the epoch) so that a restarted PRISM numbers above everything the previous run handed out, and a consumer
resuming with an old ``after_exec_sequence`` misses nothing new. With the same base, seed and command sequence the
ids, sequences and executions are identical.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import IntEnum

from services.prism.domain.engine import MAX_PRICE, MatchingEngine
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
from services.prism.domain.instruments import Instrument
from services.prism.domain.orders import (
    BELOW_MIN_NOTIONAL,
    FOK,
    GTC,
    GTD,
    INVALID_LOT_SIZE,
    INVALID_TICK_SIZE,
    IOC,
    LIMIT,
    MARKET,
    NO_LIQUIDITY,
    ORDER_NOT_FOUND,
    STOP,
    STOP_LIMIT,
    TOO_LATE_TO_AMEND,
    TOO_LATE_TO_CANCEL,
    UNKNOWN_SYMBOL,
    VALIDATION_FAILED,
    Side,
)
from services.runtime.errors import DomainError, ErrorKind, FieldViolation

ACCOUNT_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
CLIENT_ORDER_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
SIMULATION_RESET = "SIMULATION_RESET"
DUPLICATE_CLIENT_ORDER_ID_MISMATCH = "DUPLICATE_CLIENT_ORDER_ID_MISMATCH"


class ExecType(IntEnum):
    """What an execution reports (trade.prism.v1.PrismExecutionType numbers)."""

    NEW = 1
    REJECTED = 2
    TRADE = 3
    CANCELED = 4
    CANCEL_REJECTED = 5
    REPLACED = 6
    REPLACE_REJECTED = 7
    EXPIRED = 8
    TRIGGERED = 9


class OrderStatus(IntEnum):
    """An order's status at PRISM (trade.type.v1.OrderStatus numbers; PRISM never reports the PENDING_* ones)."""

    NEW = 2
    PARTIALLY_FILLED = 3
    FILLED = 4
    CANCELED = 6
    REJECTED = 8
    EXPIRED = 9


DONE = frozenset({OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED})


class Liquidity(IntEnum):
    """Maker or taker (trade.type.v1.Liquidity numbers); UNSPECIFIED for everything but a TRADE."""

    UNSPECIFIED = 0
    MAKER = 1
    TAKER = 2


@dataclass(frozen=True, slots=True)
class Execution:
    """One execution of a member order; decimals in quote/base units, fee in the quote currency."""

    exec_sequence: int
    exec_id: str
    account_id: str
    symbol: str
    venue_order_id: str
    client_order_id: str
    type: ExecType
    order_status: OrderStatus
    side: Side
    cum_qty: Decimal
    leaves_qty: Decimal
    event_time_ns: int
    last_price: Decimal | None = None
    last_qty: Decimal | None = None
    fee: Decimal | None = None
    fee_currency: str = ""
    liquidity: Liquidity = Liquidity.UNSPECIFIED
    trade_id: str = ""
    reason: str = ""  # an ErrorReason name without the prefix, "" if none
    text: str = ""


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A member's order as it arrives (decimal strings, "" when absent; enums as the proto numbers)."""

    account_id: str
    symbol: str
    client_order_id: str
    side: int
    order_type: int
    quantity: str
    limit_price: str | None = None
    stop_price: str | None = None
    time_in_force: int = 0
    expire_time_ns: int = 0
    post_only: bool = False
    reduce_only: bool = False


@dataclass(frozen=True, slots=True)
class PreparedOrder:
    """A validated order request in engine units, ready to enter."""

    request: OrderRequest
    side: int
    order_type: int
    time_in_force: int
    qty: int
    price: int
    stop_price: int

    @property
    def key(self) -> tuple[str, str]:
        return self.request.account_id, self.request.client_order_id

    @property
    def fingerprint(self) -> tuple[object, ...]:
        """What a retry must repeat to be the same order."""
        r = self.request
        return (r.symbol, self.side, self.order_type, self.time_in_force, self.qty, self.price, self.stop_price,
                r.expire_time_ns, r.post_only)  # fmt: skip


@dataclass(eq=False)
class MemberOrder:
    """A member order as PRISM tracks it (engine units)."""

    venue_order_id: str
    prepared: PreparedOrder
    instrument: Instrument
    oid: int
    owner: int
    price: int
    qty: int
    cum: int = 0
    leaves: int = 0
    status: OrderStatus = OrderStatus.NEW
    entry: tuple[Execution, ...] = ()

    @property
    def account_id(self) -> str:
        return self.prepared.request.account_id

    @property
    def client_order_id(self) -> str:
        return self.prepared.request.client_order_id

    @property
    def symbol(self) -> str:
        return self.prepared.request.symbol

    @property
    def done(self) -> bool:
        return self.status in DONE


@dataclass(frozen=True, slots=True)
class PlaceResult:
    """PlaceOrder's answer: status after matching and the executions that happened on entry."""

    venue_order_id: str
    status: OrderStatus
    executions: tuple[Execution, ...]
    replayed: bool = False


class ExecutionLog:
    """Numbers executions engine-wide and retains the last ``retention_per_account`` of every account for replay.

    ``listeners`` are called with every appended execution (the live stream fan-out).
    """

    def __init__(self, retention_per_account: int = 100_000, first_sequence: int = 0) -> None:
        if retention_per_account < 1:
            raise ValueError("retention_per_account must be >= 1")
        self.retention = retention_per_account
        self.last_sequence = first_sequence
        self.listeners: list[Callable[[Execution], None]] = []
        self._history: dict[str, list[Execution]] = {}
        self._evicted: dict[str, tuple[int, int]] = {}  # account -> (executions dropped, last dropped sequence)

    def next_sequence(self) -> int:
        self.last_sequence += 1
        return self.last_sequence

    def append(self, execution: Execution) -> None:
        history = self._history.setdefault(execution.account_id, [])
        history.append(execution)
        if len(history) > self.retention + max(1, self.retention // 8):  # trim in chunks: amortized O(1)
            cut = len(history) - self.retention
            dropped, _ = self._evicted.get(execution.account_id, (0, 0))
            self._evicted[execution.account_id] = (dropped + cut, history[cut - 1].exec_sequence)
            del history[:cut]
        for listener in self.listeners:
            listener(execution)

    def replay(self, account_id: str, after_sequence: int) -> list[Execution]:
        """The account's retained executions with ``exec_sequence > after_sequence``, oldest first."""
        history = self._history.get(account_id, [])
        return history[bisect_right(history, after_sequence, key=lambda e: e.exec_sequence) :]

    def dropped_after(self, account_id: str, after_sequence: int) -> int:
        """How many executions the account lost to retention that a replay from ``after_sequence`` would want
        (0 when the retained history reaches back far enough; otherwise everything dropped so far, an upper bound)."""
        dropped, last = self._evicted.get(account_id, (0, 0))
        return dropped if after_sequence < last else 0

    def history(self, account_id: str) -> Sequence[Execution]:
        return self._history.get(account_id, ())


DECIMAL_RE = re.compile(r"^-?[0-9]{1,38}(\.[0-9]{1,18})?$")
"""trade.type.v1.Decimal's syntax (no exponent, no sign '+', no bare point)."""


def _decimal(value: str) -> Decimal | None:
    if not DECIMAL_RE.match(value):
        return None
    try:
        return Decimal(value)
    except InvalidOperation:
        return None


class _Checks:
    """Field violations with the ErrorReason each one stands for."""

    def __init__(self) -> None:
        self.items: list[tuple[str, FieldViolation]] = []

    def add(self, reason: str, field_name: str, description: str) -> None:
        self.items.append((reason, FieldViolation(field_name, description)))

    def raise_if_any(self) -> None:
        if not self.items:
            return
        reasons = {r for r, _ in self.items}
        reason = reasons.pop() if len(reasons) == 1 else VALIDATION_FAILED
        violations = tuple(v for _, v in self.items)
        text = "; ".join(f"{v.field}: {v.description}" for v in violations)
        raise DomainError(reason, text, ErrorKind.INVALID_ARGUMENT, violations)

    def price(self, inst: Instrument, value: str | None, field_name: str) -> int:
        """A positive price on the tick, or 0 after recording why not."""
        if value is None:
            self.add(VALIDATION_FAILED, field_name, "required")
            return 0
        d = _decimal(value)
        if d is None or d <= 0:
            self.add(VALIDATION_FAILED, field_name, "must be a decimal number > 0")
            return 0
        try:
            ticks = inst.price(d)
        except ValueError:
            ticks = -1
        if ticks < 0 or ticks % inst.tick:
            self.add(INVALID_TICK_SIZE, field_name, f"must be a multiple of the tick size {inst.tick_size}")
            return 0
        if ticks >= MAX_PRICE:
            self.add(VALIDATION_FAILED, field_name, "too large")
            return 0
        return ticks

    def qty(self, inst: Instrument, value: str, field_name: str) -> int:
        """A positive quantity on the lot, or 0 after recording why not."""
        d = _decimal(value)
        if d is None or d <= 0:
            self.add(VALIDATION_FAILED, field_name, "must be a decimal number > 0")
            return 0
        try:
            lots = inst.qty(d)
        except ValueError:
            lots = -1
        if lots < 0 or lots % inst.lot:
            self.add(INVALID_LOT_SIZE, field_name, f"must be a multiple of the lot size {inst.lot_size}")
            return 0
        if lots >= MAX_PRICE:
            self.add(VALIDATION_FAILED, field_name, "too large")
            return 0
        return lots

    def notional(self, inst: Instrument, price: int, qty: int, field_name: str) -> None:
        if price and qty:
            if price * qty < inst.min_notional:
                self.add(
                    BELOW_MIN_NOTIONAL,
                    field_name,
                    f"price x quantity must be at least the minimum notional {inst.min_notional_decimal}",
                )
            elif price * qty >= MAX_PRICE:
                self.add(VALIDATION_FAILED, field_name, "price x quantity is too large")


def _not_found(what: str, metadata: dict[str, str]) -> DomainError:
    return DomainError(ORDER_NOT_FOUND, f"no order {what}", ErrorKind.NOT_FOUND, metadata=metadata)


class MemberDesk:
    """Member accounts and orders on one engine; see the module docstring."""

    def __init__(
        self,
        engine: MatchingEngine,
        log: ExecutionLog | None = None,
        *,
        first_sequence: int = 0,
        max_done_orders: int = 200_000,
        max_accounts: int = 999_999,
    ) -> None:
        self.engine = engine
        self.log = log or ExecutionLog(first_sequence=first_sequence)
        self.outbox: list[Event] = []
        self.max_done_orders = max_done_orders
        self.max_accounts = max_accounts
        self._next_order = first_sequence
        self._owners: dict[str, int] = {}
        self._orders: dict[tuple[str, str], MemberOrder] = {}  # (account, client order id)
        self._by_venue_id: dict[str, MemberOrder] = {}
        self._live: dict[int, MemberOrder] = {}  # engine order id -> live member order
        self._done: deque[MemberOrder] = deque()

    # --- queries -------------------------------------------------------------------------------------------------

    def order(self, account_id: str, venue_order_id: str = "", client_order_id: str = "") -> MemberOrder | None:
        """A member order by venue or client order id, within the account."""
        if venue_order_id:
            o = self._by_venue_id.get(venue_order_id)
            return o if o is not None and o.account_id == account_id else None
        return self._orders.get((account_id, client_order_id))

    @property
    def live_orders(self) -> int:
        return len(self._live)

    def owner_of(self, account_id: str) -> int:
        """The engine owner id of an account (assigned on first use, in order: deterministic)."""
        owner = self._owners.get(account_id)
        if owner is None:
            if len(self._owners) >= self.max_accounts:
                raise DomainError("RESOURCE_EXHAUSTED", "too many member accounts", ErrorKind.RESOURCE_EXHAUSTED)
            owner = self._owners[account_id] = len(self._owners) + 1
        return owner

    # --- the event pump --------------------------------------------------------------------------------------------

    def pump(self, now_ns: int) -> list[Execution]:
        """Drain the engine: route its events to member orders (returns the new executions) and keep them all in
        ``outbox`` for the feed."""
        events = self.engine.drain()
        if not events:
            return []
        self.outbox += events
        if not self._live:
            return []
        return self._apply(events, now_ns)

    def take_outbox(self) -> list[Event]:
        out = self.outbox
        self.outbox = []
        return out

    def attach(self, engine: MatchingEngine, now_ns: int) -> list[Execution]:
        """Switch to a fresh engine (a simulation reset): the old books are gone, so every live member order is
        CANCELED (text SIMULATION_RESET). Undrained events of the old engine are dropped with it."""
        self.pump(now_ns)
        self.outbox.clear()
        out = []
        for o in list(self._live.values()):
            o.leaves = 0
            out.append(self._record(o, ExecType.CANCELED, OrderStatus.CANCELED, now_ns, text=SIMULATION_RESET))
        self.engine = engine
        return out

    def _apply(self, events: Iterable[Event], now: int) -> list[Execution]:
        live = self._live
        out: list[Execution] = []
        for ev in events:
            kind = ev[0]
            if kind == BOOK:
                continue
            if kind == TRADE:
                # (TRADE, symbol, trade_id, price, qty, aggressor, maker oid, maker owner, maker cum, maker leaves,
                #  maker fee, taker oid, taker owner, taker cum, taker leaves, taker fee)
                for at, liquidity in ((6, Liquidity.MAKER), (11, Liquidity.TAKER)):
                    o = live.get(ev[at])
                    if o is not None:
                        out.append(self._trade(o, ev, at, liquidity, now))
                continue
            o = live.get(ev[2])
            if o is None:
                continue
            if kind == ACCEPTED:
                out.append(self._record(o, ExecType.NEW, OrderStatus.NEW, now))
            elif kind == REJECTED:
                o.leaves = 0
                out.append(self._record(o, ExecType.REJECTED, OrderStatus.REJECTED, now, reason=ev[4], text=ev[5]))
            elif kind == CANCELED:
                o.leaves = 0
                out.append(self._record(o, ExecType.CANCELED, OrderStatus.CANCELED, now, text=ev[5]))
            elif kind == EXPIRED:
                o.leaves = 0
                reason = NO_LIQUIDITY if ev[5] == NO_LIQUIDITY else ""
                out.append(self._record(o, ExecType.EXPIRED, OrderStatus.EXPIRED, now, reason=reason, text=ev[5]))
            elif kind == AMENDED:
                # (AMENDED, symbol, oid, owner, price, qty, leaves, kept_priority)
                o.price, o.qty, o.leaves = ev[4], ev[5], ev[6]
                inst = o.instrument
                text = f"price={inst.price_decimal(o.price) if o.price else ''} quantity={inst.qty_decimal(o.qty)}"
                text += " priority=kept" if ev[7] else " priority=lost"
                out.append(self._record(o, ExecType.REPLACED, self._working(o), now, text=text))
            elif kind == TRIGGERED:
                text = f"stop price reached: last trade {o.instrument.price_decimal(ev[5])}"
                out.append(self._record(o, ExecType.TRIGGERED, o.status, now, text=text))
            elif kind == CANCEL_REJECTED:
                out.append(self._record(o, ExecType.CANCEL_REJECTED, o.status, now, reason=ev[3]))
            elif kind == AMEND_REJECTED:
                out.append(self._record(o, ExecType.REPLACE_REJECTED, o.status, now, reason=ev[3]))
        return out

    @staticmethod
    def _working(o: MemberOrder) -> OrderStatus:
        return OrderStatus.PARTIALLY_FILLED if o.cum else OrderStatus.NEW

    def _trade(self, o: MemberOrder, ev: Event, at: int, liquidity: Liquidity, now: int) -> Execution:
        inst = o.instrument
        o.cum, o.leaves = ev[at + 2], ev[at + 3]
        return self._record(
            o,
            ExecType.TRADE,
            OrderStatus.PARTIALLY_FILLED if o.leaves else OrderStatus.FILLED,
            now,
            last_price=inst.price_decimal(ev[3]),
            last_qty=inst.qty_decimal(ev[4]),
            fee=inst.notional_decimal(ev[at + 4]),
            fee_currency=inst.quote,
            liquidity=liquidity,
            trade_id=str(ev[2]),
        )

    def _record(
        self,
        o: MemberOrder,
        exec_type: ExecType,
        status: OrderStatus,
        now: int,
        *,
        reason: str = "",
        text: str = "",
        last_price: Decimal | None = None,
        last_qty: Decimal | None = None,
        fee: Decimal | None = None,
        fee_currency: str = "",
        liquidity: Liquidity = Liquidity.UNSPECIFIED,
        trade_id: str = "",
    ) -> Execution:
        """Set the order's status, append the execution to the log, and retire the order once it is done."""
        o.status = status
        seq = self.log.next_sequence()
        inst = o.instrument
        execution = Execution(
            exec_sequence=seq,
            exec_id=f"E{seq}",
            account_id=o.account_id,
            symbol=o.symbol,
            venue_order_id=o.venue_order_id,
            client_order_id=o.client_order_id,
            type=exec_type,
            order_status=status,
            side=Side(o.prepared.side),
            cum_qty=inst.qty_decimal(o.cum),
            leaves_qty=inst.qty_decimal(o.leaves if status not in DONE else 0),
            event_time_ns=now,
            last_price=last_price,
            last_qty=last_qty,
            fee=fee,
            fee_currency=fee_currency,
            liquidity=liquidity,
            trade_id=trade_id,
            reason=reason,
            text=text,
        )
        self.log.append(execution)
        if status in DONE and self._live.pop(o.oid, None) is not None:
            self._done.append(o)
            while len(self._done) > self.max_done_orders:
                old = self._done.popleft()
                self._orders.pop((old.account_id, old.client_order_id), None)
                self._by_venue_id.pop(old.venue_order_id, None)
        return execution

    # --- commands ----------------------------------------------------------------------------------------------------

    def _instrument(self, symbol: str, field_name: str = "symbol") -> Instrument:
        if not symbol:
            raise DomainError(
                VALIDATION_FAILED,
                f"{field_name}: required",
                ErrorKind.INVALID_ARGUMENT,
                (FieldViolation(field_name, "required"),),
            )
        try:
            return self.engine.book(symbol).instrument
        except KeyError:
            raise DomainError(
                UNKNOWN_SYMBOL, f"unknown symbol {symbol!r}", ErrorKind.NOT_FOUND, metadata={"symbol": symbol}
            ) from None

    @staticmethod
    def _check_account(checks: _Checks, account_id: str) -> None:
        if not ACCOUNT_RE.match(account_id):
            checks.add(VALIDATION_FAILED, "account_id", "required: 1-64 characters of [A-Za-z0-9_-]")

    def prepare(self, request: OrderRequest) -> PreparedOrder | PlaceResult:
        """Validate a new order request; a retry of an order already entered gives its ``PlaceResult`` instead."""
        checks = _Checks()
        self._check_account(checks, request.account_id)
        if not CLIENT_ORDER_ID_RE.match(request.client_order_id):
            checks.add(VALIDATION_FAILED, "client_order_id", "required: 1-64 characters of [A-Za-z0-9._:-]")
        checks.raise_if_any()
        inst = self._instrument(request.symbol)
        r = request
        if r.side not in (Side.BUY, Side.SELL):
            checks.add(VALIDATION_FAILED, "spec.side", "must be BUY or SELL")
        otype = r.order_type
        if otype not in (MARKET, LIMIT, STOP, STOP_LIMIT):
            checks.add(VALIDATION_FAILED, "spec.order_type", "must be MARKET, LIMIT, STOP or STOP_LIMIT")
        tif = r.time_in_force or (IOC if otype == MARKET else GTC)
        if tif not in (GTC, IOC, FOK, GTD):
            checks.add(VALIDATION_FAILED, "spec.time_in_force", "unknown time in force")
        elif otype == MARKET and tif not in (IOC, FOK):
            checks.add(VALIDATION_FAILED, "spec.time_in_force", "a market order must be IOC or FOK")
        qty = checks.qty(inst, r.quantity, "spec.quantity")
        price = stop = 0
        if otype in (LIMIT, STOP_LIMIT):
            price = checks.price(inst, r.limit_price, "spec.limit_price")
        elif r.limit_price is not None:
            checks.add(VALIDATION_FAILED, "spec.limit_price", "only for LIMIT and STOP_LIMIT orders")
        if otype in (STOP, STOP_LIMIT):
            stop = checks.price(inst, r.stop_price, "spec.stop_price")
        elif r.stop_price is not None:
            checks.add(VALIDATION_FAILED, "spec.stop_price", "only for STOP and STOP_LIMIT orders")
        checks.notional(inst, price or stop, qty, "spec.quantity")
        if tif == GTD and r.expire_time_ns <= 0:
            checks.add(VALIDATION_FAILED, "spec.expire_time_ns", "required for GTD orders")
        elif tif != GTD and r.expire_time_ns:
            checks.add(VALIDATION_FAILED, "spec.expire_time_ns", "only for GTD orders")
        if r.post_only and (otype != LIMIT or tif not in (GTC, GTD)):
            checks.add(VALIDATION_FAILED, "spec.post_only", "only for GTC/GTD limit orders")
        if r.reduce_only:
            checks.add(VALIDATION_FAILED, "spec.reduce_only", "not supported: PRISM is a spot venue without positions")
        checks.raise_if_any()
        prepared = PreparedOrder(r, r.side, otype, tif, qty, price, stop)
        existing = self._orders.get(prepared.key)
        if existing is not None:
            return self.replay(existing, prepared)
        return prepared

    def replay(self, existing: MemberOrder, prepared: PreparedOrder) -> PlaceResult:
        """The answer to a retry: the original order, or ALREADY_EXISTS if the retry asks for something else."""
        if existing.prepared.fingerprint != prepared.fingerprint:
            raise DomainError(
                DUPLICATE_CLIENT_ORDER_ID_MISMATCH,
                f"client_order_id {prepared.request.client_order_id!r} was used for a different order",
                ErrorKind.ALREADY_EXISTS,
                metadata={"venue_order_id": existing.venue_order_id},
            )
        return PlaceResult(existing.venue_order_id, existing.status, existing.entry, replayed=True)

    def place(self, prepared: PreparedOrder, now_ns: int) -> PlaceResult:
        """Enter a prepared order and match it; the result has its status after matching and its executions."""
        existing = self._orders.get(prepared.key)
        if existing is not None:
            return self.replay(existing, prepared)
        r = prepared.request
        inst = self._instrument(r.symbol)
        owner = self.owner_of(r.account_id)
        self.engine.advance(now_ns)
        self.pump(now_ns)
        self._next_order += 1
        oid = self.engine.submit(
            r.symbol,
            owner,
            prepared.side,
            prepared.qty,
            prepared.price,
            prepared.order_type,
            prepared.time_in_force,
            prepared.stop_price,
            r.expire_time_ns if prepared.time_in_force == GTD else 0,
            r.post_only,
        )
        o = MemberOrder(f"P{self._next_order}", prepared, inst, oid, owner, prepared.price, prepared.qty)
        o.leaves = prepared.qty
        self._orders[prepared.key] = o
        self._by_venue_id[o.venue_order_id] = o
        self._live[oid] = o
        o.entry = tuple(e for e in self.pump(now_ns) if e.venue_order_id == o.venue_order_id)
        return PlaceResult(o.venue_order_id, o.status, o.entry)

    def cancel(self, account_id: str, venue_order_id: str, client_order_id: str, now_ns: int) -> Execution:
        """Cancel a live order: its CANCELED execution. NOT_FOUND if unknown; TOO_LATE_TO_CANCEL once done."""
        checks = _Checks()
        self._check_account(checks, account_id)
        if bool(venue_order_id) == bool(client_order_id):
            checks.add(VALIDATION_FAILED, "venue_order_id", "exactly one of venue_order_id and client_order_id")
        checks.raise_if_any()
        o = self.order(account_id, venue_order_id, client_order_id)
        if o is None:
            name = venue_order_id or f"with client_order_id {client_order_id}"
            raise _not_found(f"{name} in account {account_id}", {"account_id": account_id})
        self.engine.advance(now_ns)
        self.pump(now_ns)
        if not o.done:
            self.engine.cancel(o.oid)
            execs = [e for e in self.pump(now_ns) if e.venue_order_id == o.venue_order_id]
            for e in execs:
                if e.type == ExecType.CANCELED:
                    return e
        else:
            self._record(o, ExecType.CANCEL_REJECTED, o.status, now_ns, reason=TOO_LATE_TO_CANCEL)
        raise DomainError(
            TOO_LATE_TO_CANCEL,
            f"order {o.venue_order_id} is {o.status.name}",
            ErrorKind.FAILED_PRECONDITION,
            metadata={"venue_order_id": o.venue_order_id, "status": o.status.name},
        )

    def amend(
        self,
        account_id: str,
        symbol: str,
        venue_order_id: str,
        new_quantity: str | None,
        new_limit_price: str | None,
        now_ns: int,
    ) -> list[Execution]:
        """Replace a live order's quantity and/or limit price: the REPLACED execution and any fills on re-entry."""
        checks = _Checks()
        self._check_account(checks, account_id)
        if not venue_order_id:
            checks.add(VALIDATION_FAILED, "venue_order_id", "required")
        if new_quantity is None and new_limit_price is None:
            checks.add(VALIDATION_FAILED, "new_quantity", "set new_quantity and/or new_limit_price")
        checks.raise_if_any()
        inst = self._instrument(symbol)
        o = self.order(account_id, venue_order_id)
        if o is None:
            raise _not_found(f"{venue_order_id} in account {account_id}", {"account_id": account_id})
        if o.symbol != symbol:
            checks.add(VALIDATION_FAILED, "symbol", f"order {venue_order_id} is on {o.symbol}")
        nq = checks.qty(inst, new_quantity, "new_quantity") if new_quantity is not None else 0
        np = 0
        if new_limit_price is not None:
            if o.prepared.order_type in (LIMIT, STOP_LIMIT):
                np = checks.price(inst, new_limit_price, "new_limit_price")
            else:
                checks.add(VALIDATION_FAILED, "new_limit_price", "the order has no limit price")
        priced = o.prepared.order_type in (LIMIT, STOP_LIMIT)
        if priced and (nq or np):
            checks.notional(inst, np or o.price, nq or o.qty, "new_quantity" if nq else "new_limit_price")
        checks.raise_if_any()
        self.engine.advance(now_ns)
        self.pump(now_ns)
        if o.done:
            self._record(o, ExecType.REPLACE_REJECTED, o.status, now_ns, reason=TOO_LATE_TO_AMEND)
            raise DomainError(
                TOO_LATE_TO_AMEND,
                f"order {o.venue_order_id} is {o.status.name}",
                ErrorKind.FAILED_PRECONDITION,
                metadata={"venue_order_id": o.venue_order_id, "status": o.status.name},
            )
        self.engine.amend(o.oid, nq, np)
        execs = [e for e in self.pump(now_ns) if e.venue_order_id == o.venue_order_id]
        refused = next((e for e in execs if e.type == ExecType.REPLACE_REJECTED), None)
        if refused is not None:
            raise DomainError(
                refused.reason,
                f"order {o.venue_order_id} cannot be amended: {refused.reason}",
                ErrorKind.FAILED_PRECONDITION,
                metadata={"venue_order_id": o.venue_order_id, "status": o.status.name},
            )
        return execs
