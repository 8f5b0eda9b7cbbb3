"""Member order entry as a service (no grpc/gen): the order latency model, in-flight idempotency, and the live
fan-out of executions to StreamExecutions subscribers.

Latency: a command reaches the book ``latency_s`` after it arrived (0 = at once). The delayed step runs from the
event loop's timer, not from the caller's task, so an order whose caller went away meanwhile still enters (as an
order on the wire would); the caller awaits a shielded future. A retry of a PlaceOrder still in flight awaits the
first one's result (``replayed``).

Streams: ``subscribe`` takes the replay from the execution log and registers the live queue in one synchronous step,
so nothing falls between history and live. Each subscriber has a bounded queue; a subscriber that falls more than
``queue_size`` executions behind is cut off (SLOW_CONSUMER) rather than silently losing a fill, and resumes from
the retained history with its last ``exec_sequence``. ``unsubscribe`` releases the queue at once.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TypeVar

import structlog

from services.prism.domain.members import (
    ACCOUNT_RE,
    Execution,
    MemberDesk,
    OrderRequest,
    PlaceResult,
    PreparedOrder,
)
from services.prism.runner import SimulationRunner
from services.runtime.errors import DomainError, ErrorKind, FieldViolation, invalid_argument

log = structlog.get_logger("prism.order_entry")
T = TypeVar("T")


class Subscription:
    """One StreamExecutions subscriber's bounded queue."""

    def __init__(self, account_id: str, maxsize: int) -> None:
        self.account_id = account_id
        self.maxsize = maxsize
        self.queue: deque[Execution] = deque()
        self.signal = asyncio.Event()
        self.overflowed = False

    def push(self, execution: Execution) -> None:
        if self.overflowed:
            return
        if len(self.queue) >= self.maxsize:
            self.overflowed = True
            self.queue.clear()
        else:
            self.queue.append(execution)
        self.signal.set()

    def drain(self) -> list[Execution]:
        """What is queued (SLOW_CONSUMER once the queue overflowed)."""
        if self.overflowed:
            raise DomainError(
                "SLOW_CONSUMER",
                f"more than {self.maxsize} executions behind: resume with after_exec_sequence",
                ErrorKind.RESOURCE_EXHAUSTED,
            )
        out = list(self.queue)
        self.queue.clear()
        self.signal.clear()
        return out

    async def wait(self, timeout_s: float) -> None:
        """Until something is queued or ``timeout_s`` passed."""
        if self.queue or self.overflowed:
            return
        try:
            await asyncio.wait_for(self.signal.wait(), max(0.0, timeout_s))
        except TimeoutError:
            return


class OrderEntry:
    """PlaceOrder / CancelOrder / AmendOrder / StreamExecutions on top of the runner's ``MemberDesk``."""

    def __init__(self, runner: SimulationRunner, latency_s: float = 0.0, queue_size: int = 10_000) -> None:
        self.runner = runner
        self.latency_s = latency_s
        self.queue_size = queue_size
        self._subs: dict[str, set[Subscription]] = {}
        self._inflight: dict[tuple[str, str], tuple[PreparedOrder, asyncio.Future[PlaceResult]]] = {}
        runner.exec_log.listeners.append(self._fan_out)

    @property
    def desk(self) -> MemberDesk:
        return self.runner.desk

    # --- commands --------------------------------------------------------------------------------------------------

    async def _after_latency(self, command: Callable[[], T]) -> T:
        if self.latency_s <= 0:
            return command()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[T] = loop.create_future()

        def run() -> None:
            try:
                done.set_result(command())
            except Exception as exc:
                done.set_exception(exc)

        # nobody may be left to read the outcome (the caller went away): mark it read
        done.add_done_callback(lambda f: None if f.cancelled() else f.exception())
        loop.call_later(self.latency_s, run)
        return await asyncio.shield(done)

    async def place(self, request: OrderRequest) -> PlaceResult:
        prepared = self.desk.prepare(request)
        if isinstance(prepared, PlaceResult):
            return prepared
        key = prepared.key
        inflight = self._inflight.get(key)
        if inflight is not None:
            first, result = inflight
            if first.fingerprint != prepared.fingerprint:
                raise DomainError(
                    "DUPLICATE_CLIENT_ORDER_ID_MISMATCH",
                    f"client_order_id {request.client_order_id!r} is in flight for a different order",
                    ErrorKind.ALREADY_EXISTS,
                )
            original = await asyncio.shield(result)
            return PlaceResult(original.venue_order_id, original.status, original.executions, replayed=True)
        if self.latency_s <= 0:
            return self.desk.place(prepared, self.runner.clock())
        future: asyncio.Future[PlaceResult] = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda f: None if f.cancelled() else f.exception())
        self._inflight[key] = (prepared, future)

        def enter() -> PlaceResult:
            try:
                result = self.desk.place(prepared, self.runner.clock())
            except Exception as exc:
                future.set_exception(exc)
                raise
            finally:
                self._inflight.pop(key, None)
            future.set_result(result)
            return result

        return await self._after_latency(enter)

    async def cancel(self, account_id: str, venue_order_id: str, client_order_id: str) -> Execution:
        return await self._after_latency(
            lambda: self.desk.cancel(account_id, venue_order_id, client_order_id, self.runner.clock())
        )

    async def amend(
        self,
        account_id: str,
        symbol: str,
        venue_order_id: str,
        new_quantity: str | None,
        new_limit_price: str | None,
    ) -> list[Execution]:
        return await self._after_latency(
            lambda: self.desk.amend(
                account_id, symbol, venue_order_id, new_quantity, new_limit_price, self.runner.clock()
            )
        )

    # --- streams ----------------------------------------------------------------------------------------------

    def _fan_out(self, execution: Execution) -> None:
        for sub in self._subs.get(execution.account_id, ()):
            sub.push(execution)

    def subscribe(self, account_id: str, after_exec_sequence: int) -> tuple[Subscription, list[Execution], int]:
        """A live subscription, the retained executions after ``after_exec_sequence`` (none for 0) and how many the
        replay lacks because retention dropped them."""
        if not ACCOUNT_RE.match(account_id):
            raise invalid_argument(FieldViolation("account_id", "required: 1-64 characters of [A-Za-z0-9_-]"))
        exec_log = self.runner.exec_log
        replay = exec_log.replay(account_id, after_exec_sequence) if after_exec_sequence else []
        dropped = exec_log.dropped_after(account_id, after_exec_sequence) if after_exec_sequence else 0
        sub = Subscription(account_id, self.queue_size)
        self._subs.setdefault(account_id, set()).add(sub)
        log.info("prism.executions_subscribed", account_id=account_id, replay=len(replay), dropped=dropped)
        return sub, replay, dropped

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.account_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.account_id]
        sub.queue.clear()
        log.info("prism.executions_released", account_id=sub.account_id)

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subs.values())
