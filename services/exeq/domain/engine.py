"""The execution engine: accepts parent orders, works each one in its own task (slices on a schedule, or a share
of the market volume), sends child orders through the OMS, aggregates child fills into the parent, and publishes
every change as a ParentEvent.

Idempotency and restarts:
- a child's client_order_id is "<parent_order_id>-<n>" and the child is registered before it is sent, so a
  retried or re-run submission never creates a second OMS order, and its order events always find it;
- child fills are applied once per fill_id (and never from an order event older than the child's known version);
- the parent state is rebuilt from the published events (the latest version of each parent), its children from
  the OMS; a parent the OMS shows more children for continues numbering after the highest one.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TypeVar

import structlog

from services.exeq.domain.model import (
    ZERO,
    Algo,
    ChildAck,
    ChildOrder,
    ChildUpdate,
    EventType,
    Instrument,
    ParentEvent,
    ParentOrder,
    ParentStatus,
    SubmitParent,
)
from services.exeq.domain.ports import (
    ChildOrderGateway,
    ChildRefused,
    Clock,
    IdGenerator,
    ParentEventSink,
    Sleeper,
    TransientError,
)
from services.exeq.domain.slicing import (
    Slice,
    VolumeProfile,
    chunk,
    immediate_schedule,
    pov_child,
    pov_target,
    twap_schedule,
    vwap_schedule,
)
from services.exeq.domain.validation import duplicate_mismatch, validate_submit
from services.runtime.errors import DomainError, ErrorKind

log = structlog.get_logger("exeq.engine")

T = TypeVar("T")


@dataclass(frozen=True)
class EngineConfig:
    max_participation_rate: Decimal = Decimal("0.5")
    # POV: smallest child in lots (the last one may be smaller, to complete the parent).
    pov_min_child_lots: int = 1
    first_backoff_s: float = 0.05
    max_backoff_s: float = 2.0


@dataclass
class _Runtime:
    task: asyncio.Task[None] | None = None
    sleeping: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)


def schedule_for(parent: ParentOrder, lot: Decimal, profile: VolumeProfile) -> list[Slice]:
    start, p = parent.start_time_ns(), parent.params
    if parent.algo == Algo.TWAP:
        return twap_schedule(parent.quantity, lot, start, p.duration_ns, p.slice_count)
    if parent.algo == Algo.VWAP:
        return vwap_schedule(parent.quantity, lot, start, p.duration_ns, p.slice_count, profile)
    return immediate_schedule(parent.quantity, start)


def child_index(parent_order_id: str, client_order_id: str) -> int:
    prefix = parent_order_id + "-"
    tail = client_order_id[len(prefix) :] if client_order_id.startswith(prefix) else ""
    return int(tail) if tail.isdigit() else 0


class ExecutionEngine:
    def __init__(
        self,
        children: ChildOrderGateway,
        sink: ParentEventSink,
        clock: Clock,
        sleep: Sleeper,
        ids: IdGenerator,
        instruments: Mapping[str, Instrument],
        profile: VolumeProfile,
        config: EngineConfig = EngineConfig(),
    ) -> None:
        self._children = children
        self._sink = sink
        self._clock = clock
        self._sleep = sleep
        self._ids = ids
        self._instruments = dict(instruments)
        self._profile = profile
        self._config = config
        self._parents: dict[str, ParentOrder] = {}
        self._by_client: dict[tuple[str, str], str] = {}
        self._runtimes: dict[str, _Runtime] = {}
        self._publish_locks: dict[str, asyncio.Lock] = {}
        self._pov_symbols: dict[str, set[str]] = {}
        self._pov_watchers: list[Callable[[frozenset[str]], None]] = []

    # --- queries -------------------------------------------------------------------------------------------

    def get(self, account_id: str, parent_order_id: str) -> ParentOrder:
        parent = self._parents.get(parent_order_id)
        if parent is None or parent.account_id != account_id:
            raise DomainError(
                "PARENT_ORDER_NOT_FOUND",
                f"no parent order {parent_order_id!r} in account {account_id!r}",
                ErrorKind.NOT_FOUND,
                metadata={"parent_order_id": parent_order_id},
            )
        return parent

    def list_parents(
        self, account_id: str, symbol: str = "", statuses: Iterable[ParentStatus] = ()
    ) -> list[ParentOrder]:
        """Newest first."""
        wanted = frozenset(statuses)
        chosen = [
            p
            for p in self._parents.values()
            if p.account_id == account_id and (not symbol or p.symbol == symbol) and (not wanted or p.status in wanted)
        ]
        return sorted(chosen, key=lambda p: (p.create_time_ns, p.parent_order_id), reverse=True)

    def parents(self) -> list[ParentOrder]:
        return list(self._parents.values())

    # --- commands ------------------------------------------------------------------------------------------

    async def submit(self, cmd: SubmitParent) -> tuple[ParentOrder, bool]:
        """Accept a parent order (published before this returns) and start working it; idempotent per
        (account_id, client_order_id)."""
        now = self._clock.now_ns()
        existing_id = self._by_client.get((cmd.account_id, cmd.client_order_id))
        if existing_id is not None:
            existing = self._parents[existing_id]
            if (existing.symbol, existing.side, existing.quantity, existing.algo) != (
                cmd.symbol,
                cmd.side,
                cmd.quantity,
                cmd.algo,
            ):
                raise duplicate_mismatch(cmd.client_order_id)
            return existing, True
        validate_submit(cmd, self._instruments, now, self._config.max_participation_rate)
        assert cmd.algo is not None and cmd.quantity is not None
        start = cmd.params.start_time_ns
        parent = ParentOrder(
            parent_order_id=self._ids.new_id(),
            client_order_id=cmd.client_order_id,
            account_id=cmd.account_id,
            symbol=cmd.symbol,
            side=cmd.side,
            quantity=cmd.quantity,
            limit_price=cmd.limit_price,
            algo=cmd.algo,
            params=cmd.params,
            strategy_id=cmd.strategy_id,
            status=ParentStatus.PENDING if start > now else ParentStatus.WORKING,
            create_time_ns=now,
            update_time_ns=now,
        )
        self._register(parent)
        try:
            parent.version = 1
            await self._sink.publish(self._event(parent, EventType.ACCEPTED))
        except Exception as exc:
            self._unregister(parent)
            raise DomainError(
                "DEPENDENCY_UNAVAILABLE", f"could not record the parent order: {exc}", ErrorKind.UNAVAILABLE
            ) from exc
        self._start_worker(parent)
        return parent, False

    async def cancel(self, account_id: str, parent_order_id: str, reason: str = "") -> ParentOrder:
        """Stop the algorithm and cancel the open children. Idempotent while canceling/canceled."""
        parent = self.get(account_id, parent_order_id)
        if parent.status in (ParentStatus.CANCELING, ParentStatus.CANCELED):
            return parent
        if parent.status.terminal:
            raise DomainError(
                "TOO_LATE_TO_CANCEL",
                f"parent order {parent_order_id} is already {parent.status.value}",
                ErrorKind.FAILED_PRECONDITION,
                metadata={"parent_order_id": parent_order_id, "status": parent.status.value},
            )
        parent.reason_message = reason
        await self._transition(parent, ParentStatus.CANCELING)
        await self._cancel_open_children(parent)
        await self._settle(parent)
        return parent

    # --- events from the outside ---------------------------------------------------------------------------

    async def on_child_update(self, update: ChildUpdate) -> None:
        """An OMS order event about a child order; duplicates and stale events change nothing."""
        parent = self._parents.get(update.parent_order_id)
        if parent is None:
            return
        child = parent.child(update.client_order_id, update.order_id)
        if child is None:
            await self._adopt_unknown(parent, update)
            return
        if update.fill_id and update.fill_id in child.fill_ids:
            return
        if update.version and update.version <= child.version:
            return
        child.version = max(child.version, update.version)
        child.update_time_ns = update.event_time_ns or self._clock.now_ns()
        if update.order_id:
            child.order_id = update.order_id
        was_done = child.done
        if update.fill_id and update.fill_qty > 0:
            child.fill_ids.add(update.fill_id)
            child.cum_qty += update.fill_qty
            child.notional += update.fill_qty * update.fill_price
            parent.cum_qty += update.fill_qty
            parent.notional += update.fill_qty * update.fill_price
        if update.status:
            child.status = update.status
            child.reason, child.reason_message = update.reason, update.reason_message
        if update.fill_id and update.fill_qty > 0:
            await self._emit(parent, EventType.CHILD_FILLED, child.order_id)
        if child.done and not was_done:
            self._wake(parent)
            if child.cum_qty < child.quantity:
                await self._emit(parent, EventType.CHILD_DONE, child.order_id)
            if child.status == "REJECTED" and parent.status == ParentStatus.WORKING:
                await self._fail(parent, child.reason or "VENUE_REJECTED", child.reason_message or "child rejected")
                return
        await self._settle(parent)

    async def _adopt_unknown(self, parent: ParentOrder, update: ChildUpdate) -> None:
        """An event of a child this process has not seen sent (a restart): take the OMS's view of it."""
        snapshot = update.snapshot
        if snapshot is None or child_index(parent.parent_order_id, snapshot.client_order_id) == 0:
            log.info("engine.unknown_child", parent_order_id=parent.parent_order_id, order_id=update.order_id)
            return
        if update.fill_id:
            snapshot.fill_ids.add(update.fill_id)
        parent.children.append(snapshot)
        parent.children.sort(key=lambda c: c.n)
        parent.child_order_count = max(parent.child_order_count, snapshot.n)
        parent.cum_qty += snapshot.cum_qty
        parent.notional += snapshot.notional
        if update.fill_id:
            await self._emit(parent, EventType.CHILD_FILLED, snapshot.order_id)
        await self._settle(parent)

    def wants_trades(self, symbol: str) -> bool:
        return bool(self._pov_symbols.get(symbol))

    def pov_symbols(self) -> frozenset[str]:
        """The symbols whose public trades a working POV parent needs now."""
        return frozenset(symbol for symbol, parents in self._pov_symbols.items() if parents)

    def watch_pov_symbols(self, watcher: Callable[[frozenset[str]], None]) -> None:
        """Call `watcher` with the new set whenever a symbol gains its first or loses its last POV parent."""
        self._pov_watchers.append(watcher)

    def on_market_trade(self, symbol: str, quantity: Decimal, event_time_ns: int) -> None:
        """A public trade: POV parents of the symbol count it once they started."""
        for parent_id in self._pov_symbols.get(symbol, ()):
            parent = self._parents[parent_id]
            if parent.status == ParentStatus.WORKING and event_time_ns >= parent.start_time_ns():
                parent.observed_volume += quantity
                self._wake(parent)

    # --- lifecycle -----------------------------------------------------------------------------------------

    def restore(self, parents: Iterable[ParentOrder]) -> None:
        """Load parents rebuilt from the event stream and resume the open ones: each first re-reads its children
        from the OMS (retrying until the OMS answers), so child numbering continues after the highest sent."""
        for parent in parents:
            if parent.parent_order_id not in self._parents:
                self._register(parent)
        for parent in list(self._parents.values()):
            if not parent.status.terminal and parent.parent_order_id not in self._runtimes:
                self._start_worker(parent, resume=True)

    async def stop(self) -> None:
        tasks = [rt.task for rt in self._runtimes.values() if rt.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._runtimes.clear()

    async def idle(self) -> None:
        """Wait until every worker task finished (tests)."""
        tasks = [rt.task for rt in self._runtimes.values() if rt.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- internals -----------------------------------------------------------------------------------------

    def _register(self, parent: ParentOrder) -> None:
        self._parents[parent.parent_order_id] = parent
        self._by_client[(parent.account_id, parent.client_order_id)] = parent.parent_order_id
        if parent.algo == Algo.POV and not parent.status.terminal:
            self._pov_add(parent)

    def _unregister(self, parent: ParentOrder) -> None:
        self._parents.pop(parent.parent_order_id, None)
        self._by_client.pop((parent.account_id, parent.client_order_id), None)
        self._pov_discard(parent)

    def _pov_add(self, parent: ParentOrder) -> None:
        parents = self._pov_symbols.setdefault(parent.symbol, set())
        parents.add(parent.parent_order_id)
        if len(parents) == 1:
            self._pov_changed()

    def _pov_discard(self, parent: ParentOrder) -> None:
        parents = self._pov_symbols.get(parent.symbol)
        if parents and parent.parent_order_id in parents:
            parents.discard(parent.parent_order_id)
            if not parents:
                self._pov_changed()

    def _pov_changed(self) -> None:
        if self._pov_watchers:
            symbols = self.pov_symbols()
            for watcher in self._pov_watchers:
                watcher(symbols)

    def _adopt_children(self, parent: ParentOrder, children: list[ChildOrder]) -> None:
        known = {c.client_order_id: c for c in parent.children}
        for child in children:
            mine = known.get(child.client_order_id)
            if mine is None:
                parent.children.append(child)
            elif child.version > mine.version:
                mine.status, mine.cum_qty, mine.notional, mine.version = (
                    child.status,
                    child.cum_qty,
                    child.notional,
                    child.version,
                )
                mine.order_id = child.order_id or mine.order_id
        parent.children.sort(key=lambda c: c.n)
        highest = max((c.n for c in parent.children), default=0)
        parent.child_order_count = max(parent.child_order_count, highest)
        if parent.children:
            parent.cum_qty = sum((c.cum_qty for c in parent.children), ZERO)
            parent.notional = sum((c.notional for c in parent.children), ZERO)
        rate = parent.params.participation_rate
        if parent.algo == Algo.POV and rate:
            parent.observed_volume = max(parent.observed_volume, parent.committed_qty / rate)

    def _event(self, parent: ParentOrder, kind: EventType, child_order_id: str = "") -> ParentEvent:
        return ParentEvent(
            event_id=f"{parent.parent_order_id}:{parent.version}",
            event_time_ns=parent.update_time_ns,
            parent=replace(parent),
            type=kind,
            child_order_id=child_order_id,
        )

    async def _emit(self, parent: ParentOrder, kind: EventType, child_order_id: str = "") -> None:
        """Version the change and publish it; events of one parent are published in version order."""
        parent.version += 1
        parent.update_time_ns = max(self._clock.now_ns(), parent.update_time_ns)
        event = self._event(parent, kind, child_order_id)
        lock = self._publish_locks.setdefault(parent.parent_order_id, asyncio.Lock())
        async with lock:
            try:
                await self._sink.publish(event)
            except Exception as exc:  # the next event carries the full state again
                log.error("engine.publish_failed", event_id=event.event_id, error=repr(exc))

    async def _transition(self, parent: ParentOrder, status: ParentStatus, reason: str = "", message: str = "") -> None:
        if parent.status == status:
            return
        parent.status = status
        if reason:
            parent.reason, parent.reason_message = reason, message
        if status.terminal:
            self._pov_discard(parent)
        if status.terminal or status == ParentStatus.CANCELING:
            self._interrupt(parent)
        await self._emit(parent, EventType.STATUS_CHANGED)

    async def _fail(self, parent: ParentOrder, reason: str, message: str) -> None:
        await self._transition(parent, ParentStatus.FAILED, reason, message)
        await self._cancel_open_children(parent)

    async def _settle(self, parent: ParentOrder) -> None:
        """Move the parent to its end state once the quantity is done or nothing can fill any more."""
        if parent.status.terminal:
            return
        if parent.cum_qty >= parent.quantity:
            await self._transition(parent, ParentStatus.COMPLETED)
        elif parent.open_children:
            return
        elif parent.status == ParentStatus.CANCELING:
            await self._transition(parent, ParentStatus.CANCELED)
        elif parent.status == ParentStatus.WORKING and parent.schedule_done:
            await self._transition(parent, ParentStatus.EXPIRED, "", f"schedule ended with {parent.leaves_qty} left")

    def _wake(self, parent: ParentOrder) -> None:
        runtime = self._runtimes.get(parent.parent_order_id)
        if runtime is not None:
            runtime.wake.set()

    def _interrupt(self, parent: ParentOrder) -> None:
        runtime = self._runtimes.get(parent.parent_order_id)
        if runtime is not None and runtime.sleeping and runtime.task is not None:
            runtime.task.cancel()

    async def _cancel_open_children(self, parent: ParentOrder) -> None:
        for child in parent.open_children:
            if not child.order_id:
                continue  # still being submitted: the worker cancels it once the OMS answered
            try:
                await self._retry(functools.partial(self._children.cancel, parent, child))
            except Exception as exc:
                log.warning("engine.child_cancel_failed", child=child.client_order_id, error=repr(exc))

    async def _retry(self, call: Callable[[], Awaitable[T]], attempts: int = 5) -> T:
        backoff = self._config.first_backoff_s
        for attempt in range(attempts):
            try:
                return await call()
            except TransientError:
                if attempt == attempts - 1:
                    raise
                await self._sleep(backoff)
                backoff = min(backoff * 2, self._config.max_backoff_s)
        raise AssertionError("unreachable")

    def _start_worker(self, parent: ParentOrder, resume: bool = False) -> None:
        if parent.status.terminal:
            return
        runtime = _Runtime()
        self._runtimes[parent.parent_order_id] = runtime
        runtime.task = asyncio.create_task(self._work(parent, runtime, resume), name=f"exeq:{parent.parent_order_id}")

    async def _resync(self, parent: ParentOrder, runtime: _Runtime) -> None:
        backoff = self._config.first_backoff_s
        while True:
            try:
                children = await self._children.list_children(parent)
                break
            except TransientError as exc:
                log.warning("engine.resync_retry", parent_order_id=parent.parent_order_id, error=str(exc))
                await self._pause(runtime, backoff)
                backoff = min(backoff * 2, self._config.max_backoff_s)
        self._adopt_children(parent, children)
        if parent.status == ParentStatus.CANCELING:
            await self._cancel_open_children(parent)

    def _active(self, parent: ParentOrder) -> bool:
        return parent.status in (ParentStatus.PENDING, ParentStatus.WORKING)

    async def _pause(self, runtime: _Runtime, seconds: float | None, wakeable: bool = False) -> None:
        """Sleep (forever if seconds is None; until runtime.wake is set if wakeable) in a state where a cancel
        may interrupt the task."""
        runtime.sleeping = True
        try:
            if not wakeable:
                await self._sleep(seconds or 0.0)
            elif seconds is None:
                await runtime.wake.wait()
            else:
                waits = {asyncio.ensure_future(runtime.wake.wait()), asyncio.ensure_future(self._sleep(seconds))}
                try:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for w in waits:
                        w.cancel()
                    await asyncio.gather(*waits, return_exceptions=True)
        finally:
            runtime.sleeping = False

    async def _wait_until(self, parent: ParentOrder, runtime: _Runtime, t_ns: int) -> None:
        while self._active(parent):
            delta = t_ns - self._clock.now_ns()
            if delta <= 0:
                return
            await self._pause(runtime, delta / 1e9)

    async def _work(self, parent: ParentOrder, runtime: _Runtime, resume: bool = False) -> None:
        try:
            if resume:
                await self._resync(parent, runtime)
                await self._settle(parent)
                if parent.status.terminal:
                    return  # its children ended while exeq was down
                if parent.symbol not in self._instruments:
                    # Restored from the stream, but its instrument left this exeq's configuration since.
                    log.warning(
                        "engine.unknown_instrument", parent_order_id=parent.parent_order_id, symbol=parent.symbol
                    )
                    await self._fail(parent, "UNKNOWN_SYMBOL", f"{parent.symbol} is no longer an instrument of exeq")
                    return
            await self._wait_until(parent, runtime, parent.start_time_ns())
            if parent.status == ParentStatus.PENDING:
                await self._transition(parent, ParentStatus.WORKING)
            if parent.algo == Algo.POV:
                await self._work_pov(parent, runtime)
            else:
                await self._work_schedule(parent, runtime)
            if not self._active(parent):
                return
            if parent.end_time_ns():
                await self._wait_until(parent, runtime, parent.end_time_ns())
            parent.schedule_done = True
            await self._settle(parent)
        except asyncio.CancelledError:
            if self._active(parent):
                raise  # the service is stopping: the parent resumes after the restart
        except Exception as exc:
            log.exception("engine.worker_failed", parent_order_id=parent.parent_order_id)
            if not parent.status.terminal:
                await self._fail(parent, "INTERNAL", f"execution stopped: {type(exc).__name__}")
        finally:
            self._runtimes.pop(parent.parent_order_id, None)

    async def _work_schedule(self, parent: ParentOrder, runtime: _Runtime) -> None:
        lot = self._instruments[parent.symbol].lot_size
        slices = schedule_for(parent, lot, self._profile)
        index, end = 0, parent.end_time_ns()
        while self._active(parent) and index < len(slices):
            now = self._clock.now_ns()
            if end and now >= end:
                return  # resumed after the end (exeq was down): what is left expires, it is not dumped at once
            due = index
            while due < len(slices) and slices[due].due_ns <= now:
                due += 1
            if due > index:
                index = due
                parent.scheduled_qty = slices[index - 1].cum_target
                await self._send_up_to(parent, slices[index - 1].cum_target, lot)
                continue
            await self._wait_until(parent, runtime, slices[index].due_ns)
        if parent.algo == Algo.IMMEDIATE:
            parent.schedule_done = True

    async def _work_pov(self, parent: ParentOrder, runtime: _Runtime) -> None:
        lot = self._instruments[parent.symbol].lot_size
        rate = parent.params.participation_rate
        assert rate is not None
        min_child = lot * self._config.pov_min_child_lots
        end = parent.end_time_ns()
        # Until filled: a child that ends with quantity unfilled returns it to the volume-driven schedule.
        while self._active(parent) and parent.cum_qty < parent.quantity:
            runtime.wake.clear()
            parent.scheduled_qty = pov_target(rate, parent.observed_volume, parent.quantity, lot)
            due = pov_child(rate, parent.observed_volume, parent.quantity, parent.committed_qty, lot, min_child)
            if due > 0:
                await self._send_up_to(parent, parent.committed_qty + due, lot)
                continue
            now = self._clock.now_ns()
            if end and now >= end:
                return
            await self._pause(runtime, (end - now) / 1e9 if end else None, wakeable=True)

    async def _send_up_to(self, parent: ParentOrder, target: Decimal, lot: Decimal) -> None:
        """Send children until the committed quantity reaches target (never beyond the parent quantity)."""
        due = min(target, parent.quantity) - parent.committed_qty
        for quantity in chunk(due, parent.params.max_child_quantity, lot):
            if parent.status != ParentStatus.WORKING:
                return
            await self._send_child(parent, quantity)

    def _new_child(self, parent: ParentOrder, quantity: Decimal) -> ChildOrder:
        n = parent.child_order_count + 1
        parent.child_order_count = n
        limit = parent.limit_price
        venues = parent.params.venue_preference
        now = self._clock.now_ns()
        child = ChildOrder(
            n=n,
            client_order_id=f"{parent.parent_order_id}-{n}",
            quantity=quantity,
            order_type="MARKET" if limit is None else "LIMIT",
            # A limit parent worked at once rests at its limit; sliced children take what is there now.
            time_in_force="GTC" if limit is not None and parent.algo == Algo.IMMEDIATE else "IOC",
            limit_price=limit,
            venue=venues[0] if venues else "",
            create_time_ns=now,
            update_time_ns=now,
        )
        parent.children.append(child)
        return child

    async def _send_child(self, parent: ParentOrder, quantity: Decimal) -> None:
        child = self._new_child(parent, quantity)
        backoff = self._config.first_backoff_s
        while True:
            try:
                ack = await self._children.submit(parent, child)
                break
            except TransientError as exc:
                log.warning("engine.child_retry", child=child.client_order_id, error=str(exc), backoff_s=backoff)
                await self._sleep(backoff)
                backoff = min(backoff * 2, self._config.max_backoff_s)
            except ChildRefused as refused:
                child.status, child.reason, child.reason_message = "REJECTED", refused.reason, refused.message
                await self._emit(parent, EventType.CHILD_DONE, child.client_order_id)
                await self._fail(parent, refused.reason, refused.message)
                return
        self._apply_ack(child, ack)
        await self._emit(parent, EventType.CHILD_SENT, child.order_id)
        if child.status == "REJECTED":
            await self._emit(parent, EventType.CHILD_DONE, child.order_id)
            await self._fail(parent, child.reason or "VENUE_REJECTED", child.reason_message or "child order rejected")
        elif parent.status != ParentStatus.WORKING and not child.done:
            await self._cancel_open_children(parent)
        await self._settle(parent)

    @staticmethod
    def _apply_ack(child: ChildOrder, ack: ChildAck) -> None:
        child.order_id = ack.order_id
        if ack.version > child.version:
            child.version = ack.version
            child.status = ack.status
            child.reason, child.reason_message = ack.reason, ack.reason_message
        if ack.create_time_ns:
            child.create_time_ns = ack.create_time_ns
