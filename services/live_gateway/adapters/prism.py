"""The PRISM venue (the simulated exchange) over gRPC: order entry and the per-account execution stream.

Accounts: an OMS account trades through the PRISM member account of the same id; the OMS order id travels as
PRISM's client_order_id and comes back on every execution.

Executions: one StreamExecutions call per account, resumed after a (re)connect or a gateway restart from the
gateway's resume point (the last exec_sequence it published for the account), so nothing is lost; the overlap
is dropped by JetStream's Nats-Msg-Id dedup. Executions in RPC answers are handed over too (they publish faster
than the stream delivers them), without moving the resume point.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import structlog
from trade.prism.v1 import execution_pb2, prism_pb2, prism_pb2_grpc

from services.live_gateway.adapters.codec import (
    dec_or_none,
    dec_pb,
    liquidity_from_pb,
    reason_from_pb,
    side_from_pb,
    spec_pb,
    status_from_pb,
)
from services.live_gateway.domain.model import (
    AmendOrder,
    AmendResult,
    CancelOrder,
    CancelResult,
    ConnectionState,
    ConnectionStatus,
    ExecType,
    OrderStatus,
    OrderType,
    PlaceOrder,
    PlaceResult,
    StatusHolder,
    TimeInForce,
    Venue,
    VenueCapabilities,
    VenueExecution,
    VenueRateLimited,
    VenueRejected,
    VenueUnavailable,
)
from services.live_gateway.domain.ports import Checkpoints, Clock, ExecutionSink
from services.runtime.status import error_info, status_from_trailers

log = structlog.get_logger("live_gateway.prism")

CAPABILITIES = VenueCapabilities(
    display_name="PRISM (simulated exchange)",
    simulated=True,
    order_types=(OrderType.MARKET, OrderType.LIMIT, OrderType.STOP, OrderType.STOP_LIMIT),
    time_in_force=(TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.GTD),
    native_amend=True,
)

_REJECTING_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.PERMISSION_DENIED,
}
_DOWN_CODES = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
# Executions received while the previous batch was being published, handed over at most this many at a time.
STREAM_BATCH = 256
STREAM_QUEUE = 4096


@dataclass(frozen=True)
class _StreamEnd:
    """The execution stream ended: cleanly (error None) or with the error that ended it."""

    error: Exception | None


def execution_from_pb(pe: execution_pb2.PrismExecution, receive_time_ns: int) -> VenueExecution | None:
    """A PRISM execution in venue-neutral form; None for an execution of unknown type."""
    if pe.type == execution_pb2.PRISM_EXECUTION_TYPE_UNSPECIFIED:
        return None
    try:
        exec_type = ExecType(execution_pb2.PrismExecutionType.Name(pe.type).removeprefix("PRISM_EXECUTION_TYPE_"))
    except ValueError:
        return None
    return VenueExecution(
        venue=Venue.PRISM,
        account_id=pe.account_id,
        symbol=pe.symbol,
        order_id=pe.client_order_id,
        venue_order_id=pe.venue_order_id,
        exec_id=pe.exec_id or f"seq-{pe.exec_sequence}",
        exec_type=exec_type,
        order_status=status_from_pb(pe.order_status),
        side=side_from_pb(pe.side),
        last_price=dec_or_none(pe.last_price, pe.HasField("last_price")),
        last_quantity=dec_or_none(pe.last_quantity, pe.HasField("last_quantity")),
        cum_qty=dec_or_none(pe.cum_qty, pe.HasField("cum_qty")),
        leaves_qty=dec_or_none(pe.leaves_qty, pe.HasField("leaves_qty")),
        fee=dec_or_none(pe.fee, pe.HasField("fee")),
        fee_currency=pe.fee_currency,
        liquidity=liquidity_from_pb(pe.liquidity),
        trade_id=pe.trade_id,
        reason=reason_from_pb(pe.reason),
        text=pe.text,
        venue_sequence=pe.exec_sequence,
        event_time_ns=pe.event_time_ns,
        receive_time_ns=receive_time_ns,
    )


def _venue_error(exc: grpc.aio.AioRpcError, what: str) -> Exception:
    code = exc.code()
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return VenueRateLimited(f"prism {what}: {exc.details()}")
    if code in _REJECTING_CODES:
        status = status_from_trailers(exc.trailing_metadata())
        info = error_info(status) if status is not None else None
        reason = info.reason if info is not None and info.reason else "VENUE_REJECTED"
        return VenueRejected(reason, exc.details() or code.name, code.name)
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return VenueUnavailable(f"prism does not implement {what} (yet)")
    return VenueUnavailable(f"prism {what}: {code.name}: {exc.details()}")


class PrismAdapter:
    def __init__(
        self,
        channel: grpc.aio.Channel,
        clock: Clock,
        deadline_s: float = 2.0,
        accounts: Sequence[str] = (),
        probe_interval_s: float = 5.0,
        backoff_s: tuple[float, float] = (0.2, 5.0),
    ) -> None:
        self._stub = prism_pb2_grpc.PrismServiceStub(channel)
        self._channel = channel
        self._clock = clock
        self._deadline_s = deadline_s
        self._accounts = tuple(accounts)
        self._probe_interval_s = probe_interval_s
        self._backoff_s = backoff_s
        self._status = StatusHolder()
        self._streams: dict[str, asyncio.Task[None]] = {}
        self._probe_task: asyncio.Task[None] | None = None
        self._sink: ExecutionSink | None = None
        self._checkpoints: Checkpoints | None = None

    @property
    def venue(self) -> Venue:
        return Venue.PRISM

    @property
    def capabilities(self) -> VenueCapabilities:
        return CAPABILITIES

    def status(self) -> ConnectionStatus:
        return self._status.snapshot()

    def streaming_accounts(self) -> list[str]:
        return sorted(self._streams)

    async def start(self, sink: ExecutionSink, checkpoints: Checkpoints) -> None:
        self._sink, self._checkpoints = sink, checkpoints
        self._probe_task = asyncio.create_task(self._probe(), name="prism-probe")
        for account in sorted(set(self._accounts) | set(await checkpoints.accounts(Venue.PRISM))):
            self.watch(account)

    async def stop(self) -> None:
        tasks = [*self._streams.values(), *([self._probe_task] if self._probe_task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._streams.clear()
        await self._channel.close()

    def watch(self, account_id: str, floor: int = 0) -> None:
        """Stream the account's executions (once per account).

        The stream resumes after the gateway's resume point; an account without one starts after ``floor`` (just
        before its first execution, taken from the first PlaceOrder answer), so events between that answer and the
        stream's start are replayed rather than lost. Without either, the stream starts live.
        """
        if account_id not in self._streams:
            self._streams[account_id] = asyncio.create_task(self._stream(account_id, floor), name=f"prism:{account_id}")

    async def _stream(self, account_id: str, floor: int) -> None:
        assert self._sink is not None and self._checkpoints is not None
        delay = self._backoff_s[0]
        while True:
            after = await self._checkpoints.last_sequence(Venue.PRISM, account_id) or floor
            call = self._stub.StreamExecutions(
                prism_pb2.StreamExecutionsRequest(account_id=account_id, after_exec_sequence=after)
            )
            log.info("prism.stream_open", account_id=account_id, after_exec_sequence=after)
            # The reader keeps receiving while a batch is published: what queued up meanwhile is the next batch.
            queue: asyncio.Queue[VenueExecution | _StreamEnd] = asyncio.Queue(STREAM_QUEUE)
            reader = asyncio.create_task(self._read(call, queue), name=f"prism-read:{account_id}")
            try:
                while True:
                    batch = [await queue.get()]
                    while not queue.empty() and len(batch) < STREAM_BATCH:
                        batch.append(queue.get_nowait())
                    executions = [item for item in batch if isinstance(item, VenueExecution)]
                    if executions:
                        await self._sink(executions, True)
                        delay = self._backoff_s[0]
                    end = batch[-1]
                    if isinstance(end, _StreamEnd):
                        if end.error is not None:
                            raise end.error
                        log.warning("prism.stream_ended", account_id=account_id)
                        break
            except grpc.aio.AioRpcError as exc:
                self._status.set(
                    ConnectionState.CONNECTING, f"execution stream: {exc.code().name}", self._clock.now_ns()
                )
                log.warning("prism.stream_failed", account_id=account_id, code=exc.code().name, detail=exc.details())
            except Exception as exc:  # a publish failed (NATS down): resume from the last published event
                log.warning("prism.stream_sink_failed", account_id=account_id, error=repr(exc))
            finally:
                reader.cancel()
                call.cancel()
                await asyncio.gather(reader, return_exceptions=True)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff_s[1])

    async def _read(self, call: Any, queue: asyncio.Queue[VenueExecution | _StreamEnd]) -> None:
        try:
            async for resp in call:
                now = self._clock.now_ns()
                self._status.alive(now)
                self._status.set(ConnectionState.CONNECTED, "", now)
                if resp.HasField("execution"):
                    ex = execution_from_pb(resp.execution, now)
                    if ex is None:
                        log.warning("prism.unknown_execution", exec_id=resp.execution.exec_id)
                        continue
                    await queue.put(ex)
        except Exception as exc:  # the stream failed (AioRpcError) or an execution could not be read
            await queue.put(_StreamEnd(exc))
            return
        await queue.put(_StreamEnd(None))

    async def _probe(self) -> None:
        """Liveness of the venue (also what GetVenueStatus reports before any account streams)."""
        while True:
            now = self._clock.now_ns()
            try:
                await self._stub.GetSimulationStatus(prism_pb2.GetSimulationStatusRequest(), timeout=self._deadline_s)
                self._status.alive(now)
                self._status.set(ConnectionState.CONNECTED, "", now)
            except grpc.aio.AioRpcError as exc:
                if exc.code() in _DOWN_CODES:
                    self._status.set(ConnectionState.DISCONNECTED, f"{exc.code().name}: {exc.details()}", now)
                else:  # it answered: alive
                    self._status.alive(now)
                    self._status.set(ConnectionState.CONNECTED, "", now)
            await asyncio.sleep(self._probe_interval_s)

    def _received(self, executions: Sequence[execution_pb2.PrismExecution]) -> tuple[VenueExecution, ...]:
        now = self._clock.now_ns()
        self._status.alive(now)
        return tuple(ex for pe in executions if (ex := execution_from_pb(pe, now)) is not None)

    async def place(self, order: PlaceOrder) -> PlaceResult:
        request = prism_pb2.PlaceOrderRequest(
            account_id=order.account_id,
            symbol=order.symbol,
            client_order_id=order.order_id,
            spec=spec_pb(order.spec),
        )
        try:
            resp = await self._stub.PlaceOrder(request, timeout=self._deadline_s)
        except grpc.aio.AioRpcError as exc:
            self.watch(order.account_id)
            raise _venue_error(exc, "PlaceOrder") from exc
        executions = self._received(resp.executions)
        sequences = [ex.venue_sequence for ex in executions if ex.venue_sequence > 0]
        self.watch(order.account_id, min(sequences) - 1 if sequences else 0)
        status = status_from_pb(resp.status) or OrderStatus.NEW
        return PlaceResult(resp.venue_order_id, status, executions, resp.replayed)

    async def cancel(self, cancel: CancelOrder) -> CancelResult:
        self.watch(cancel.account_id)
        request = prism_pb2.CancelOrderRequest(account_id=cancel.account_id)
        if cancel.venue_order_id:
            request.venue_order_id = cancel.venue_order_id
        else:
            request.client_order_id = cancel.order_id
        try:
            resp = await self._stub.CancelOrder(request, timeout=self._deadline_s)
        except grpc.aio.AioRpcError as exc:
            raise _venue_error(exc, "CancelOrder") from exc
        executions = self._received([resp.execution] if resp.HasField("execution") else [])
        accepted = not any(ex.exec_type == ExecType.CANCEL_REJECTED for ex in executions)
        return CancelResult(accepted, executions)

    async def amend(self, amend: AmendOrder) -> AmendResult:
        if not amend.venue_order_id:
            raise VenueRejected("ORDER_NOT_FOUND", "prism amends need the venue order id, and it is not known")
        self.watch(amend.account_id)
        request = prism_pb2.AmendOrderRequest(
            account_id=amend.account_id,
            symbol=amend.symbol,
            venue_order_id=amend.venue_order_id,
            new_quantity=dec_pb(amend.new_spec.quantity),
            new_limit_price=dec_pb(amend.new_spec.limit_price),
        )
        try:
            resp = await self._stub.AmendOrder(request, timeout=self._deadline_s)
        except grpc.aio.AioRpcError as exc:
            raise _venue_error(exc, "AmendOrder") from exc
        executions = self._received(resp.executions)
        accepted = not any(ex.exec_type == ExecType.REPLACE_REJECTED for ex in executions)
        return AmendResult(accepted, amend.venue_order_id, executions)
