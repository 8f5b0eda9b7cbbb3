"""The OMS application service: commands (submit, cancel, amend, venue reports, kill switch) and queries.

Every change is first appended to the journal under its deterministic event id "<order_id>:<version>" and only then
applied in memory, under a per-order lock, so the journal (JetStream ORDERS) is the source of truth and memory is a
projection of it. The order id itself derives from (account_id, client_order_id): a SubmitOrder retried after any
failure (even a crash between the journal's ack and the reply) produces the same event id and is deduplicated.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TypeVar

import structlog

from services.oms.domain import machine
from services.oms.domain.book import OrderBook, Submission, matches
from services.oms.domain.model import (
    Fill,
    KillSwitch,
    Order,
    OrderChange,
    OrderSpec,
    OrderType,
    Side,
    Status,
    VenueReport,
)
from services.oms.domain.ports import Clock, Journal, RiskCheck
from services.runtime.errors import DomainError, ErrorKind, FieldViolation, invalid_argument
from services.runtime.identity import Principal

log = structlog.get_logger("oms")

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
MAX_PAGE_SIZE = 1000
T = TypeVar("T")
DEFAULT_PAGE_SIZE = 100


def order_id_for(account_id: str, client_order_id: str) -> str:
    """A ULID-shaped (26 Crockford base32 characters) id that is a pure function of the idempotency key."""
    digest = int.from_bytes(hashlib.sha256(f"{account_id}\x00{client_order_id}".encode()).digest()[:17], "big")
    digest >>= 136 - 128
    return "".join(_CROCKFORD[(digest >> (5 * i)) & 31] for i in reversed(range(26)))


@dataclass(frozen=True)
class NewOrder:
    account_id: str
    symbol: str
    client_order_id: str
    spec: OrderSpec
    venue: str
    strategy_id: str = ""
    parent_order_id: str = ""


@dataclass(frozen=True)
class Amend:
    account_id: str
    symbol: str
    order_id: str
    new_quantity: Decimal | None
    new_limit_price: Decimal | None
    new_stop_price: Decimal | None
    expected_version: int = 0


@dataclass(frozen=True)
class OrderQuery:
    account_id: str
    symbol: str = ""
    statuses: frozenset[Status] = frozenset()
    start_time_ns: int = 0
    end_time_ns: int = 0
    open_only: bool = False
    parent_order_id: str = ""
    page_size: int = 0
    page_token: str = ""


@dataclass(frozen=True)
class FillQuery:
    account_id: str
    symbol: str = ""
    order_id: str = ""
    start_time_ns: int = 0
    end_time_ns: int = 0
    page_size: int = 0
    page_token: str = ""


@dataclass
class Subscription:
    """A live feed of order changes or fills for one account; closed when the consumer fell too far behind."""

    account_id: str
    symbols: frozenset[str]
    limit: int
    queue: asyncio.Queue[OrderChange | Fill] = field(default_factory=asyncio.Queue)
    overflowed: bool = False

    def offer(self, item: OrderChange | Fill, symbol: str) -> None:
        if self.overflowed or (self.symbols and symbol not in self.symbols):
            return
        if self.queue.qsize() >= self.limit:
            self.overflowed = True
            return
        self.queue.put_nowait(item)


class KeyedLocks:
    """One asyncio.Lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


def _not_found(what: str) -> DomainError:
    return DomainError("ORDER_NOT_FOUND", f"no order {what} in this account", ErrorKind.NOT_FOUND)


class Oms:
    def __init__(
        self,
        journal: Journal,
        risk: RiskCheck,
        clock: Clock,
        default_venue: str = "PRISM",
        stream_queue_limit: int = 10_000,
        commit_attempts: int = 3,
        catch_up: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.journal = journal
        self.risk = risk
        self.clock = clock
        self.default_venue = default_venue
        self.book = OrderBook()
        self.ready = False
        self._locks = KeyedLocks()
        self._order_subs: list[Subscription] = []
        self._fill_subs: list[Subscription] = []
        self._stream_queue_limit = stream_queue_limit
        self._commit_attempts = commit_attempts
        # Reads the journal beyond what memory holds (an event whose append ack was lost, e.g.).
        self.catch_up = catch_up

    # --- the journal's side: replay and catch-up -------------------------------------------------------------

    def restore(self, change: OrderChange) -> bool:
        """Apply an event read back from the journal; False for a duplicate or an out-of-order old version."""
        order = machine.restore(self.book.get(change.order.order_id), change)
        if order is None:
            return False
        return self._record(change, order)

    def holds(self, order_id: str, version: int) -> bool:
        """Memory already has this version of the order, or a later one."""
        order = self.book.get(order_id)
        return order is not None and order.version >= version

    def mark_ready(self) -> None:
        self.ready = True
        log.info("oms.ready", orders=len(self.book))

    def _record(self, change: OrderChange, order: Order) -> bool:
        fill = change.detail.fill
        if not self.book.put(order, fill):
            return False
        for sub in self._order_subs:
            if sub.account_id == order.account_id:
                sub.offer(change, order.symbol)
        if fill is not None:
            for sub in self._fill_subs:
                if sub.account_id == order.account_id:
                    sub.offer(fill, order.symbol)
        return True

    def _require_ready(self) -> None:
        if not self.ready:
            raise DomainError(
                "SERVICE_NOT_READY", "the OMS is rebuilding its state from JetStream", ErrorKind.UNAVAILABLE
            )

    async def _append(self, change: OrderChange) -> bool:
        """Journal then memory. False when the journal already held this event id (its stored event is applied)."""
        stored = await self.journal.append(change)
        if stored is None:
            self._record(change, change.order)
            return True
        self.restore(stored)
        return False

    async def _commit_locked(self, order_id: str, decide: Callable[[Order], OrderChange | None]) -> Order:
        for _ in range(self._commit_attempts):
            order = self.book.get(order_id)
            if order is None:
                raise _not_found(order_id)
            change = decide(order)
            if change is None:
                return order
            if await self._append(change):
                return change.order
            # The journal was ahead of memory (an earlier append's ack was lost): decide again on the newer state.
        raise DomainError(
            "VERSION_CONFLICT",
            f"order {order_id} kept changing, retry",
            ErrorKind.ABORTED,
            metadata={"order_id": order_id},
        )

    async def _commit(self, order_id: str, decide: Callable[[Order], OrderChange | None]) -> Order:
        async with self._locks.hold(order_id):
            return await self._commit_locked(order_id, decide)

    # --- commands --------------------------------------------------------------------------------------------

    async def submit(self, cmd: NewOrder) -> tuple[Order, bool]:
        """(order, replayed). A retry with the same spec returns the original order; a different one fails."""
        self._require_ready()
        async with self._locks.hold(("submit", cmd.account_id, cmd.client_order_id)):
            existing = self.book.by_client_order_id(cmd.account_id, cmd.client_order_id)
            if existing is not None:
                return self._replayed(existing, cmd), True
            order_id = order_id_for(cmd.account_id, cmd.client_order_id)
            verdict = await self.risk.check(
                cmd.account_id, cmd.symbol, cmd.spec, cmd.client_order_id, "", cmd.strategy_id
            )
            now = self.clock.now_ns()
            order = Order(
                order_id=order_id,
                client_order_id=cmd.client_order_id,
                account_id=cmd.account_id,
                symbol=cmd.symbol,
                spec=cmd.spec,
                status=Status.PENDING_NEW,
                venue=cmd.venue or self.default_venue,
                create_time_ns=now,
                update_time_ns=now,
                strategy_id=cmd.strategy_id,
                parent_order_id=cmd.parent_order_id,
            )
            if verdict.approved:
                change = machine.accept(order, verdict.check_id)
            else:
                change = machine.reject_new(order, verdict.reason, verdict.message, verdict.check_id)
            async with self._locks.hold(order_id):
                if await self._append(change):
                    return change.order, False
            stored = self.book.get(order_id)
            if stored is None:  # pragma: no cover - the journal returned an event of another order
                raise DomainError("INTERNAL", f"journal holds no order {order_id}", ErrorKind.INTERNAL)
            return self._replayed(stored, cmd), True

    def _replayed(self, existing: Order, cmd: NewOrder) -> Order:
        asked = Submission(cmd.symbol, cmd.spec, cmd.venue or self.default_venue, cmd.strategy_id, cmd.parent_order_id)
        if self.book.submissions.get(existing.order_id) != asked:
            raise DomainError(
                "DUPLICATE_CLIENT_ORDER_ID_MISMATCH",
                f"client_order_id {cmd.client_order_id} was already used for a different order",
                ErrorKind.ALREADY_EXISTS,
                metadata={"order_id": existing.order_id, "client_order_id": cmd.client_order_id},
            )
        return existing

    def find(self, account_id: str, order_id: str, client_order_id: str, principal: Principal | None = None) -> Order:
        """The order by exactly one of its ids, if it belongs to the account (and the caller may see it)."""
        if bool(order_id) == bool(client_order_id):
            raise invalid_argument(
                FieldViolation("order_id", "set exactly one of order_id and client_order_id"),
            )
        order = self.book.get(order_id) if order_id else self.book.by_client_order_id(account_id, client_order_id)
        if order is None or order.account_id != account_id:
            raise _not_found(order_id or client_order_id)
        if principal is not None and not principal.may_act_on(order.account_id):
            raise _not_found(order_id or client_order_id)
        return order

    async def cancel(
        self,
        account_id: str,
        order_id: str = "",
        client_order_id: str = "",
        principal: Principal | None = None,
    ) -> Order:
        self._require_ready()
        order = self.find(account_id, order_id, client_order_id, principal)
        by = principal.user_id if principal is not None else "client"
        now = self.clock.now_ns()
        return await self._commit(order.order_id, _canceller(by, "", "", now))

    async def cancel_all(
        self, account_id: str, symbol: str = "", side: Side | None = None, principal: Principal | None = None
    ) -> tuple[list[str], list[tuple[str, DomainError]]]:
        self._require_ready()
        by = principal.user_id if principal is not None else "client"
        canceled: list[str] = []
        failures: list[tuple[str, DomainError]] = []
        for order in self.book.open_orders(account_id, symbol, side):
            now = self.clock.now_ns()
            try:
                await self._commit(order.order_id, _canceller(by, "", "", now))
                canceled.append(order.order_id)
            except DomainError as exc:
                failures.append((order.order_id, exc))
        return canceled, failures

    async def amend(self, cmd: Amend, principal: Principal | None = None) -> Order:
        self._require_ready()
        order = self.find(cmd.account_id, cmd.order_id, "", principal)
        if order.symbol != cmd.symbol:
            raise invalid_argument(FieldViolation("symbol", f"the order's symbol is {order.symbol}"))
        by = principal.user_id if principal is not None else "client"
        async with self._locks.hold(order.order_id):
            order = self.book.get(order.order_id) or order
            new_spec = machine.amended_spec(
                order, cmd.new_quantity, cmd.new_limit_price, cmd.new_stop_price, cmd.expected_version
            )
            self._check_amend_fields(order.spec, cmd)
            if new_spec == order.spec:
                raise invalid_argument(FieldViolation("new_quantity", "the amend changes nothing"))
            verdict = await self.risk.check(
                order.account_id, order.symbol, new_spec, order.client_order_id, order.order_id, order.strategy_id
            )
            if not verdict.approved:
                raise DomainError(
                    verdict.reason or "RISK_CHECK_UNAVAILABLE",
                    verdict.message or "risk refused the amended order",
                    ErrorKind.FAILED_PRECONDITION,
                    metadata={"order_id": order.order_id, "risk_check_id": verdict.check_id},
                )
            now = self.clock.now_ns()
            return await self._commit_locked(
                order.order_id,
                lambda o: machine.request_replace(
                    o, machine.amended_spec(o, new_spec.quantity, new_spec.limit_price, new_spec.stop_price), by, now
                ),
            )

    @staticmethod
    def _check_amend_fields(spec: OrderSpec, cmd: Amend) -> None:
        violations = []
        if cmd.new_quantity is None and cmd.new_limit_price is None and cmd.new_stop_price is None:
            violations.append(
                FieldViolation("new_quantity", "set at least one of new_quantity, new_limit_price, new_stop_price")
            )
        if cmd.new_limit_price is not None and spec.order_type not in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            violations.append(FieldViolation("new_limit_price", f"not allowed for {spec.order_type.value} orders"))
        if cmd.new_stop_price is not None and spec.order_type not in (OrderType.STOP, OrderType.STOP_LIMIT):
            violations.append(FieldViolation("new_stop_price", f"not allowed for {spec.order_type.value} orders"))
        if violations:
            raise invalid_argument(*violations)

    async def on_report(self, report: VenueReport) -> Order | None:
        """Apply a venue report. Refused reports (unknown order, illegal transition, overfill) are logged and
        dropped; a journal failure raises so that the report is delivered again."""
        order = self.book.get(report.order_id)
        if order is None and self.catch_up is not None:
            await self.catch_up()
            order = self.book.get(report.order_id)
        if order is None or (report.account_id and report.account_id != order.account_id):
            log.warning("oms.report_unknown_order", report_id=report.report_id, order_id=report.order_id)
            return None
        now = self.clock.now_ns()
        try:
            return await self._commit(order.order_id, lambda o: machine.apply_report(o, report, now))
        except DomainError as exc:
            if exc.kind in (ErrorKind.UNAVAILABLE, ErrorKind.ABORTED):
                raise
            log.error("oms.report_refused", report_id=report.report_id, order_id=report.order_id, error=str(exc))
            return None

    async def on_kill_switch(self, ks: KillSwitch) -> list[str]:
        """Request the cancel of every open order in scope that existed when the switch was engaged."""
        accounts = [ks.account_id] if ks.account_id else list(self.book.accounts())
        canceled = []
        for account_id in accounts:
            for order in self.book.open_orders(account_id):
                if ks.event_time_ns and order.create_time_ns > ks.event_time_ns:
                    continue
                now = self.clock.now_ns()
                decide = _canceller("kill-switch", "RISK_KILL_SWITCH", ks.reason, now)
                try:
                    after = await self._commit(order.order_id, decide)
                except DomainError as exc:
                    if exc.kind == ErrorKind.UNAVAILABLE:
                        raise
                    log.info("oms.kill_switch_skip", order_id=order.order_id, error=str(exc))
                    continue
                if after.status in (Status.PENDING_CANCEL, Status.CANCELED):
                    canceled.append(order.order_id)
        log.info("oms.kill_switch", event_id=ks.event_id, account_id=ks.account_id or "*", canceled=len(canceled))
        return canceled

    # --- queries ---------------------------------------------------------------------------------------------

    def get(self, account_id: str, order_id: str, client_order_id: str, principal: Principal | None = None) -> Order:
        self._require_ready()
        return self.find(account_id, order_id, client_order_id, principal)

    def list_orders(self, q: OrderQuery) -> tuple[list[Order], str]:
        self._require_ready()
        filters = [q.account_id, q.symbol, sorted(s.value for s in q.statuses), q.start_time_ns, q.end_time_ns]
        filters += [q.open_only, q.parent_order_id]
        orders = [
            o
            for o in self.book.orders_of(q.account_id)
            if matches(o, q.symbol, q.statuses, q.open_only, q.parent_order_id)
            and (not q.start_time_ns or o.create_time_ns >= q.start_time_ns)
            and (not q.end_time_ns or o.create_time_ns < q.end_time_ns)
        ]
        return _page(orders, lambda o: (o.create_time_ns, o.order_id), filters, q.page_size, q.page_token)

    def list_fills(self, q: FillQuery) -> tuple[list[Fill], str]:
        self._require_ready()
        filters = [q.account_id, q.symbol, q.order_id, q.start_time_ns, q.end_time_ns]
        fills = [
            f
            for f in self.book.fills_of(q.account_id)
            if (not q.symbol or f.symbol == q.symbol)
            and (not q.order_id or f.order_id == q.order_id)
            and (not q.start_time_ns or f.event_time_ns >= q.start_time_ns)
            and (not q.end_time_ns or f.event_time_ns < q.end_time_ns)
        ]
        return _page(fills, lambda f: (f.event_time_ns, f.fill_id), filters, q.page_size, q.page_token)

    # --- live streams ----------------------------------------------------------------------------------------

    def subscribe_orders(self, account_id: str, symbols: frozenset[str]) -> tuple[list[Order], Subscription]:
        """The open orders now and every later change, without a gap (no await between the two)."""
        self._require_ready()
        sub = Subscription(account_id, symbols, self._stream_queue_limit)
        snapshot = [o for o in self.book.open_orders(account_id) if not symbols or o.symbol in symbols]
        self._order_subs.append(sub)
        return snapshot, sub

    def subscribe_fills(
        self, account_id: str, symbols: frozenset[str], since_ns: int
    ) -> tuple[list[Fill], Subscription]:
        self._require_ready()
        sub = Subscription(account_id, symbols, self._stream_queue_limit)
        replay = []
        if since_ns:
            replay = [
                f
                for f in self.book.fills_of(account_id)
                if f.event_time_ns >= since_ns and (not symbols or f.symbol in symbols)
            ]
            replay.sort(key=lambda f: (f.event_time_ns, f.fill_id))
        self._fill_subs.append(sub)
        return replay, sub

    def unsubscribe(self, sub: Subscription) -> None:
        for subs in (self._order_subs, self._fill_subs):
            if sub in subs:
                subs.remove(sub)


def _canceller(requested_by: str, reason: str, text: str, now_ns: int) -> Callable[[Order], OrderChange | None]:
    def decide(order: Order) -> OrderChange | None:
        return machine.request_cancel(order, requested_by, reason, text, now_ns)

    return decide


def _page(
    items: list[T], key: Callable[[T], tuple[int, str]], filters: list[object], page_size: int, page_token: str
) -> tuple[list[T], str]:
    """Newest first, keyset-paginated; the token carries the last key and a digest of the filters."""
    size = DEFAULT_PAGE_SIZE if page_size <= 0 else min(page_size, MAX_PAGE_SIZE)
    digest = hashlib.sha256(json.dumps(filters, default=str).encode()).hexdigest()[:16]
    items = sorted(items, key=key, reverse=True)
    if page_token:
        try:
            token = json.loads(base64.urlsafe_b64decode(page_token.encode()))
            after = (int(token["t"]), str(token["i"]))
            valid = token["f"] == digest
        except (ValueError, KeyError, TypeError):
            valid = False
        if not valid:
            raise DomainError(
                "INVALID_PAGE_TOKEN",
                "page_token is malformed or was issued for other filters",
                ErrorKind.INVALID_ARGUMENT,
            )
        items = [i for i in items if key(i) < after]
    page = items[:size]
    if len(items) <= size:
        return page, ""
    last = key(page[-1])
    token = base64.urlsafe_b64encode(json.dumps({"t": last[0], "i": last[1], "f": digest}).encode()).decode()
    return page, token
