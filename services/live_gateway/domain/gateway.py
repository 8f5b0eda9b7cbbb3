"""The gateway: routes orders to venue adapters and turns every venue event into a published report (and fill).

Publishing order and idempotency: for a trade the fill goes to FILLS before its report goes to EXEC, so a
consumer never sees a TRADE report whose fill is missing. Both carry deterministic ids (see ids.py) and are
published with Nats-Msg-Id, so a venue event seen twice (an RPC answer and the venue's stream, or a replay after a
restart) is stored once. Events of one venue/account are published one at a time, in the order they arrive.

Resume points: every report on exec.<venue>.<account_id> carries the venue sequence up to which everything of that
account has been published (``resume_sequence``); after a restart the adapter resumes the venue's stream from
the resume point of the last stored report, and JetStream drops the overlap.
"""

from __future__ import annotations

import asyncio
import re
import statistics
from collections import OrderedDict, defaultdict, deque
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal

import structlog

from services.live_gateway.domain.ids import fill_id, report_id
from services.live_gateway.domain.model import (
    AmendOrder,
    AmendResult,
    CancelOrder,
    CancelResult,
    ConnectionState,
    ExecType,
    ExecutionReport,
    Fill,
    NotSupported,
    OrderSpec,
    OrderStatus,
    OrderType,
    PlaceOrder,
    PlaceResult,
    TimeInForce,
    Venue,
    VenueExecution,
    VenueInfo,
    VenueRateLimited,
    VenueRejected,
    VenueStatus,
    VenueUnavailable,
)
from services.live_gateway.domain.ports import Checkpoints, Clock, ReportPublisher, VenueAdapter
from services.runtime.errors import DomainError, ErrorKind, Validator

log = structlog.get_logger("live_gateway")

ACCOUNT_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ORDER_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
SYMBOL_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
DAY_NS = 86_400 * 1_000_000_000
RTT_WINDOW_NS = 60 * 1_000_000_000


def validate_spec(v: Validator, spec: OrderSpec, prefix: str) -> None:
    """The OrderSpec rules of trade.type.v1 that do not need the instrument (tick and lot sizes are the venue's)."""
    v.require(spec.quantity > 0, f"{prefix}.quantity", "must be > 0")
    priced = spec.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
    stopped = spec.order_type in (OrderType.STOP, OrderType.STOP_LIMIT)
    if priced:
        v.require(spec.limit_price is not None, f"{prefix}.limit_price", f"required for {spec.order_type.value}")
    else:
        v.require(spec.limit_price is None, f"{prefix}.limit_price", f"not allowed for {spec.order_type.value}")
    if spec.limit_price is not None:
        v.require(spec.limit_price > 0, f"{prefix}.limit_price", "must be > 0")
    if stopped:
        v.require(spec.stop_price is not None, f"{prefix}.stop_price", f"required for {spec.order_type.value}")
    else:
        v.require(spec.stop_price is None, f"{prefix}.stop_price", f"not allowed for {spec.order_type.value}")
    if spec.stop_price is not None:
        v.require(spec.stop_price > 0, f"{prefix}.stop_price", "must be > 0")
    if spec.order_type == OrderType.MARKET:
        v.require(
            spec.time_in_force in (TimeInForce.IOC, TimeInForce.FOK),
            f"{prefix}.time_in_force",
            "market orders are IOC or FOK",
        )
    if spec.time_in_force == TimeInForce.GTD:
        v.require(spec.expire_time_ns > 0, f"{prefix}.expire_time_ns", "required for GTD")
    else:
        v.require(spec.expire_time_ns == 0, f"{prefix}.expire_time_ns", "only for GTD")
    if spec.post_only:
        v.require(
            spec.order_type == OrderType.LIMIT and spec.time_in_force in (TimeInForce.GTC, TimeInForce.GTD),
            f"{prefix}.post_only",
            "only for LIMIT orders with GTC or GTD",
        )


def _require_ids(v: Validator, account_id: str, order_id: str, symbol: str | None) -> None:
    v.require(bool(ACCOUNT_RE.match(account_id)), "account_id", "1-64 characters from [A-Za-z0-9_-]")
    v.require(bool(ORDER_ID_RE.match(order_id)), "order_id", "1-64 characters from [A-Za-z0-9._:-]")
    if symbol is not None:
        v.require(bool(SYMBOL_RE.match(symbol)), "symbol", "1-32 characters from [A-Za-z0-9_-]")


@dataclass
class OrderContext:
    """What the gateway remembers of an order it placed (in memory; reports after a restart carry less)."""

    order: PlaceOrder
    quantity: Decimal
    limit_price: Decimal | None
    status: OrderStatus = OrderStatus.PENDING_NEW
    venue_order_id: str = ""
    filled_qty: Decimal = Decimal(0)
    filled_notional: Decimal = Decimal(0)
    result: PlaceResult | None = None
    placed: asyncio.Event = field(default_factory=asyncio.Event)
    cancel_rejects: int = 0


def build_report(execution: VenueExecution, ctx: OrderContext | None) -> ExecutionReport:
    """Normalize one venue event; what the venue left out is taken from the order as the gateway placed it."""
    ex = execution
    if ex.side is None and ctx is not None:
        ex = replace(ex, side=ctx.order.spec.side)
    quantity = ex.quantity
    if quantity is None and ctx is not None:
        quantity = ctx.quantity
    status = ex.order_status
    if quantity is None and ex.cum_qty is not None and ex.leaves_qty is not None and status and not status.done:
        quantity = ex.cum_qty + ex.leaves_qty
    limit_price = ex.limit_price if ex.limit_price is not None else (ctx.limit_price if ctx else None)
    fill = None
    avg_price = ex.avg_price
    if ex.exec_type == ExecType.TRADE and ex.last_price is not None and ex.last_quantity is not None:
        fill = Fill(
            fill_id=fill_id(ex),
            order_id=ex.order_id,
            client_order_id=ctx.order.client_order_id if ctx else "",
            account_id=ex.account_id,
            symbol=ex.symbol,
            side=ex.side,
            price=ex.last_price,
            quantity=ex.last_quantity,
            fee=ex.fee if ex.fee is not None else Decimal(0),
            fee_currency=ex.fee_currency,
            liquidity=ex.liquidity,
            venue=ex.venue,
            venue_order_id=ex.venue_order_id,
            venue_trade_id=ex.trade_id,
            event_time_ns=ex.event_time_ns,
            receive_time_ns=ex.receive_time_ns,
        )
        if avg_price is None and ctx is not None and ex.cum_qty is not None:
            qty = ctx.filled_qty + ex.last_quantity
            # Only when the gateway saw every fill of the order (not after a restart mid-order).
            if qty == ex.cum_qty and qty > 0:
                avg_price = (ctx.filled_notional + ex.last_quantity * ex.last_price) / qty
    elif avg_price is None and ctx is not None and ctx.filled_qty > 0 and ctx.filled_qty == ex.cum_qty:
        avg_price = ctx.filled_notional / ctx.filled_qty
    return ExecutionReport(
        report_id=report_id(ex),
        execution=ex,
        client_order_id=ctx.order.client_order_id if ctx else "",
        quantity=quantity,
        limit_price=limit_price,
        avg_price=avg_price,
        fill=fill,
    )


def synthetic_execution(
    venue: Venue,
    account_id: str,
    symbol: str,
    order_id: str,
    venue_order_id: str,
    exec_id: str,
    exec_type: ExecType,
    status: OrderStatus | None,
    rejection: VenueRejected,
    now_ns: int,
) -> VenueExecution:
    """A report for a venue answer that is not a venue event (a refused request): ids derive from the request."""
    return VenueExecution(
        venue=venue,
        account_id=account_id,
        symbol=symbol,
        order_id=order_id,
        venue_order_id=venue_order_id,
        exec_id=exec_id,
        exec_type=exec_type,
        order_status=status,
        reason=rejection.reason,
        text=rejection.text,
        event_time_ns=now_ns,
        receive_time_ns=now_ns,
    )


class ReportSubscription:
    """One StreamExecutionReports call's queue; overflowed once the client fell too far behind."""

    def __init__(self, account_id: str, venues: frozenset[Venue], maxsize: int) -> None:
        self.account_id = account_id
        self.venues = venues
        self.queue: asyncio.Queue[ExecutionReport] = asyncio.Queue(maxsize)
        self.overflowed = False

    def offer(self, report: ExecutionReport) -> None:
        if self.venues and report.execution.venue not in self.venues:
            return
        try:
            self.queue.put_nowait(report)
        except asyncio.QueueFull:
            self.overflowed = True


@dataclass
class _VenueCounters:
    orders_placed: int = 0
    orders_rejected: int = 0
    round_trips: deque[tuple[int, int]] = field(default_factory=deque)
    notional_day: int = 0
    notional_today: Decimal = Decimal(0)


class Gateway:
    """Venue routing, report/fill publishing, resume points and the per-account report fan-out."""

    def __init__(
        self,
        adapters: Sequence[VenueAdapter],
        publisher: ReportPublisher,
        checkpoints: Checkpoints,
        clock: Clock,
        subscriber_queue_size: int = 10_000,
        seen_reports_limit: int = 100_000,
    ) -> None:
        self._adapters = {a.venue: a for a in adapters}
        self._publisher = publisher
        self._store = checkpoints
        self._clock = clock
        self._queue_size = subscriber_queue_size
        self._orders: dict[tuple[Venue, str], OrderContext] = {}
        self._locks: defaultdict[tuple[Venue, str], asyncio.Lock] = defaultdict(asyncio.Lock)
        self._resume: dict[tuple[Venue, str], int] = {}
        self._resume_hint: dict[tuple[Venue, str], int] = {}
        self._subscribers: defaultdict[str, set[ReportSubscription]] = defaultdict(set)
        self._counters: defaultdict[Venue, _VenueCounters] = defaultdict(_VenueCounters)
        # Reports this process applied (False) and saw stored, new or duplicate (True): the venue's stream repeats
        # what an RPC answer already carried, which JetStream would only deduplicate, a round trip later.
        self._seen_reports: OrderedDict[str, bool] = OrderedDict()
        self._seen_reports_limit = seen_reports_limit
        self._fanout_tail: dict[tuple[Venue, str], asyncio.Future[None]] = {}

    @property
    def venues(self) -> list[Venue]:
        return list(self._adapters)

    async def start(self) -> None:
        for adapter in self._adapters.values():
            await adapter.start(self.on_executions, self)

    async def stop(self) -> None:
        for adapter in self._adapters.values():
            await adapter.stop()

    def adapter(self, venue: Venue | None) -> VenueAdapter:
        if venue is None:
            raise DomainError("UNKNOWN_VENUE", "venue is required", ErrorKind.INVALID_ARGUMENT)
        adapter = self._adapters.get(venue)
        if adapter is None:
            enabled = ", ".join(v.value for v in self._adapters) or "none"
            raise DomainError(
                "UNKNOWN_VENUE",
                f"venue {venue.value} is not enabled in this deployment (enabled: {enabled})",
                ErrorKind.INVALID_ARGUMENT,
                metadata={"venue": venue.value},
            )
        if adapter.status().state == ConnectionState.DISCONNECTED:
            raise DomainError(
                "VENUE_UNAVAILABLE",
                f"venue {venue.value} is disconnected: {adapter.status().message}",
                ErrorKind.UNAVAILABLE,
                metadata={"venue": venue.value},
            )
        return adapter

    # --- Checkpoints, as the adapters see them ---------------------------------------------------------------

    async def accounts(self, venue: Venue) -> list[str]:
        known = {account for v, account in self._resume if v == venue}
        return sorted(known | set(await self._store.accounts(venue)))

    async def last_sequence(self, venue: Venue, account_id: str) -> int:
        """The venue sequence up to which every event of the account has been published."""
        key = (venue, account_id)
        async with self._locks[key]:
            return await self._resume_point(key)

    async def _resume_point(self, key: tuple[Venue, str]) -> int:
        if key not in self._resume:
            self._resume[key] = await self._store.last_sequence(*key)
        seq = self._resume[key]
        if seq == 0 and key in self._resume_hint:
            # Nothing came through the venue's stream yet, but an RPC answer showed where the account started.
            return self._resume_hint[key]
        return seq

    # --- Orders ----------------------------------------------------------------------------------------------

    async def place(self, order: PlaceOrder) -> PlaceResult:
        v = Validator()
        _require_ids(v, order.account_id, order.order_id, order.symbol)
        validate_spec(v, order.spec, "spec")
        v.raise_if_any()
        adapter = self.adapter(order.venue)
        key = (order.venue, order.order_id)
        existing = self._orders.get(key)
        if existing is not None:
            await existing.placed.wait()
            if existing.result is not None:
                return replace(existing.result, replayed=True, executions=())
            return await self.place(order)
        ctx = OrderContext(order, order.spec.quantity, order.spec.limit_price)
        self._orders[key] = ctx
        counters = self._counters[order.venue]
        started = self._clock.now_ns()
        try:
            result = await adapter.place(order)
        except VenueRejected as rejection:
            ex = synthetic_execution(
                order.venue,
                order.account_id,
                order.symbol,
                order.order_id,
                "",
                f"gw:{order.order_id}:rejected",
                ExecType.REJECTED,
                OrderStatus.REJECTED,
                rejection,
                self._clock.now_ns(),
            )
            result = PlaceResult("", OrderStatus.REJECTED, (ex,))
        except (VenueUnavailable, VenueRateLimited, NotSupported) as exc:
            del self._orders[key]
            ctx.placed.set()
            raise self._venue_error(order.venue, exc) from exc
        except BaseException:
            del self._orders[key]
            ctx.placed.set()
            raise
        now = self._clock.now_ns()
        counters.round_trips.append((now, now - started))
        counters.orders_placed += 1
        if result.status == OrderStatus.REJECTED:
            counters.orders_rejected += 1
        if result.venue_order_id:
            ctx.venue_order_id = result.venue_order_id
        try:
            await self.on_executions(result.executions, False)
        finally:
            ctx.result = replace(result, executions=())
            ctx.placed.set()
        return result

    async def cancel(self, cancel: CancelOrder) -> CancelResult:
        v = Validator()
        _require_ids(v, cancel.account_id, cancel.order_id, cancel.symbol or None)
        v.raise_if_any()
        adapter = self.adapter(cancel.venue)
        ctx = self._orders.get((cancel.venue, cancel.order_id))
        if ctx is not None and not cancel.venue_order_id and ctx.venue_order_id:
            cancel = replace(cancel, venue_order_id=ctx.venue_order_id)
        if ctx is not None and not cancel.symbol:
            cancel = replace(cancel, symbol=ctx.order.symbol)
        try:
            result = await adapter.cancel(cancel)
        except VenueRejected as rejection:
            attempt = 1
            if ctx is not None:
                ctx.cancel_rejects += 1
                attempt = ctx.cancel_rejects
            ex = synthetic_execution(
                cancel.venue,
                cancel.account_id,
                cancel.symbol,
                cancel.order_id,
                cancel.venue_order_id,
                f"gw:{cancel.order_id}:cancel-rejected:{attempt}",
                ExecType.CANCEL_REJECTED,
                ctx.status if ctx else None,
                rejection,
                self._clock.now_ns(),
            )
            result = CancelResult(False, (ex,))
        except (VenueUnavailable, VenueRateLimited, NotSupported) as exc:
            raise self._venue_error(cancel.venue, exc) from exc
        await self.on_executions(result.executions, False)
        return result

    async def amend(self, amend: AmendOrder) -> AmendResult:
        v = Validator()
        _require_ids(v, amend.account_id, amend.order_id, amend.symbol)
        validate_spec(v, amend.new_spec, "new_spec")
        v.require(amend.order_version > 0, "order_version", "must be > 0")
        v.raise_if_any()
        adapter = self.adapter(amend.venue)
        ctx = self._orders.get((amend.venue, amend.order_id))
        if ctx is not None and not amend.venue_order_id and ctx.venue_order_id:
            amend = replace(amend, venue_order_id=ctx.venue_order_id)
        try:
            result = await adapter.amend(amend)
        except VenueRejected as rejection:
            ex = synthetic_execution(
                amend.venue,
                amend.account_id,
                amend.symbol,
                amend.order_id,
                amend.venue_order_id,
                f"gw:{amend.order_id}:replace-rejected:v{amend.order_version}",
                ExecType.REPLACE_REJECTED,
                ctx.status if ctx else None,
                rejection,
                self._clock.now_ns(),
            )
            result = AmendResult(False, amend.venue_order_id, (ex,))
        except (VenueUnavailable, VenueRateLimited, NotSupported) as exc:
            raise self._venue_error(amend.venue, exc) from exc
        if result.accepted and ctx is not None:
            ctx.quantity = amend.new_spec.quantity
            ctx.limit_price = amend.new_spec.limit_price
        await self.on_executions(result.executions, False)
        return result

    @staticmethod
    def _venue_error(venue: Venue, exc: Exception) -> DomainError:
        meta = {"venue": venue.value}
        if isinstance(exc, VenueRateLimited):
            return DomainError("VENUE_RATE_LIMITED", f"{venue.value}: {exc}", ErrorKind.RESOURCE_EXHAUSTED, (), meta)
        if isinstance(exc, NotSupported):
            return DomainError("NOT_SUPPORTED", f"{venue.value}: {exc}", ErrorKind.FAILED_PRECONDITION, (), meta)
        return DomainError("VENUE_UNAVAILABLE", f"{venue.value}: {exc}", ErrorKind.UNAVAILABLE, (), meta)

    # --- Venue events ----------------------------------------------------------------------------------------

    async def on_execution(self, execution: VenueExecution, advance_checkpoint: bool) -> None:
        await self.on_executions((execution,), advance_checkpoint)

    async def on_executions(self, executions: Sequence[VenueExecution], advance_checkpoint: bool) -> None:
        """Publish venue events in order, each fill (TRADE) before its report; fan out what was new.

        The events of one venue/account are sent together and their acks awaited together: one round trip per
        group, not two per event. A report vouches (resume header) only for events confirmed stored before it was
        sent, except a lone fill-less event, which vouches for itself: a restart replays at most the last group,
        which JetStream deduplicates.
        """
        start = 0
        while start < len(executions):
            key = (executions[start].venue, executions[start].account_id)
            end = start + 1
            while end < len(executions) and (executions[end].venue, executions[end].account_id) == key:
                end += 1
            await self._publish_group(key, executions[start:end], advance_checkpoint)
            start = end

    async def _publish_group(
        self, key: tuple[Venue, str], group: Sequence[VenueExecution], advance_checkpoint: bool
    ) -> None:
        # Under the lock: resume point, reports and sending, so the account's messages leave in the venue's order.
        # The acks are awaited outside it: the next group (another order's RPC answer) is sent meanwhile.
        async with self._locks[key]:
            header = await self._resume_point(key)
            point = self._resume[key]
            if not advance_checkpoint and point == 0:
                for ex in group:
                    if ex.venue_sequence > 0:
                        hint = self._resume_hint.get(key)
                        seq = ex.venue_sequence - 1
                        self._resume_hint[key] = seq if hint is None else min(hint, seq)
                        header = self._resume_hint[key]
            pending: list[ExecutionReport] = []
            for ex in group:
                ctx = self._orders.get((ex.venue, ex.order_id))
                report = build_report(ex, ctx)
                seen = self._seen_reports.get(report.report_id)
                if seen is None:
                    # Applied before it is stored: a later fill of the same order in this group builds on it.
                    self._apply(report, ctx)
                    self._remember(report.report_id, False)
                if not seen:
                    pending.append(report)
            last_seq = max(ex.venue_sequence for ex in group)
            lone = len(group) == 1 and len(pending) == 1 and pending[0].fill is None
            if advance_checkpoint and lone and last_seq > point:
                header = last_seq
            acks: list[Awaitable[bool]] = []
            for report in pending:
                if report.fill is not None:
                    acks.append(await self._publisher.send_fill(report.fill))
                acks.append(await self._publisher.send_report(report, header))
            previous = self._fanout_tail.get(key)
            mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._fanout_tail[key] = mine
        try:
            outcomes = [await acks[0]] if len(acks) == 1 else await asyncio.gather(*acks)
            if advance_checkpoint and last_seq > self._resume[key]:
                self._resume[key] = last_seq
            if previous is not None:
                # Shielded: a caller cancelled while it waits must not cancel the group before it.
                await asyncio.shield(previous)  # subscribers get the reports in the order they were sent
            stored = iter(outcomes)
            for report in pending:
                if report.fill is not None:
                    next(stored)
                self._remember(report.report_id, True)
                if next(stored):
                    for sub in list(self._subscribers.get(report.execution.account_id, ())):
                        sub.offer(report)
        finally:
            mine.set_result(None)
            if self._fanout_tail.get(key) is mine:
                del self._fanout_tail[key]

    def _remember(self, report_id: str, stored: bool) -> None:
        self._seen_reports[report_id] = stored
        if len(self._seen_reports) > self._seen_reports_limit:
            self._seen_reports.popitem(last=False)

    def _apply(self, report: ExecutionReport, ctx: OrderContext | None) -> None:
        ex = report.execution
        if report.fill is not None:
            counters = self._counters[ex.venue]
            day = self._clock.now_ns() // DAY_NS
            if day != counters.notional_day:
                counters.notional_day, counters.notional_today = day, Decimal(0)
            counters.notional_today += report.fill.price * report.fill.quantity
        if ctx is None:
            return
        if ex.order_status is not None:
            ctx.status = ex.order_status
        if ex.venue_order_id:
            ctx.venue_order_id = ex.venue_order_id
        if report.fill is not None:
            ctx.filled_qty += report.fill.quantity
            ctx.filled_notional += report.fill.quantity * report.fill.price
        if ex.exec_type == ExecType.REPLACED:
            if ex.quantity is not None:
                ctx.quantity = ex.quantity
            if ex.limit_price is not None:
                ctx.limit_price = ex.limit_price

    # --- Queries and the fan-out -----------------------------------------------------------------------------

    def list_venues(self) -> list[VenueInfo]:
        return [VenueInfo(v, a.capabilities, a.status().state) for v, a in self._adapters.items()]

    def venue_status(self, venue: Venue | None) -> VenueStatus:
        if venue is None or venue not in self._adapters:
            self.adapter(venue)  # raises the UNKNOWN_VENUE error
        assert venue is not None
        counters = self._counters[venue]
        now = self._clock.now_ns()
        while counters.round_trips and counters.round_trips[0][0] < now - RTT_WINDOW_NS:
            counters.round_trips.popleft()
        p50 = int(statistics.median(rtt for _, rtt in counters.round_trips)) if counters.round_trips else 0
        open_orders = sum(1 for (v, _), ctx in self._orders.items() if v == venue and not ctx.status.done)
        notional = counters.notional_today if counters.notional_day == now // DAY_NS else Decimal(0)
        return VenueStatus(
            venue=venue,
            connection=self._adapters[venue].status(),
            round_trip_p50_ns=p50,
            open_order_count=open_orders,
            orders_placed=counters.orders_placed,
            orders_rejected=counters.orders_rejected,
            traded_notional_today=notional,
        )

    def subscribe(self, account_id: str, venues: frozenset[Venue]) -> ReportSubscription:
        v = Validator()
        v.require(bool(ACCOUNT_RE.match(account_id)), "account_id", "1-64 characters from [A-Za-z0-9_-]")
        v.raise_if_any()
        sub = ReportSubscription(account_id, venues, self._queue_size)
        self._subscribers[account_id].add(sub)
        return sub

    def subscriber_count(self, account_id: str) -> int:
        return len(self._subscribers.get(account_id, ()))

    def unsubscribe(self, sub: ReportSubscription) -> None:
        subs = self._subscribers.get(sub.account_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subscribers[sub.account_id]
