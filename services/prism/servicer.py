"""Translates trade.prism.v1.PrismService requests to the live engine/simulation (``SimulationRunner``) and the
member order entry (``OrderEntry``) and back."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any, cast

import grpc
from trade.prism.v1 import execution_pb2, prism_pb2, prism_pb2_grpc
from trade.type.v1 import (
    decimal_pb2,
    errors_pb2,
    fill_pb2,
    instrument_pb2,
    market_data_pb2,
    order_pb2,
    stream_pb2,
    venue_pb2,
)

from services.prism.domain.members import Execution, OrderRequest, PlaceResult
from services.prism.domain.participants import ParticipantKind
from services.prism.order_entry import OrderEntry
from services.prism.runner import ParticipantChange, RunState, SimulationRunner
from services.runtime.errors import DomainError, ErrorKind, FieldViolation, invalid_argument

Context = grpc.aio.ServicerContext[Any, Any]

_STATE_TO_PB = {
    RunState.RUNNING: prism_pb2.SIMULATION_STATE_RUNNING,
    RunState.PAUSED: prism_pb2.SIMULATION_STATE_PAUSED,
}
_PB_TO_STATE = {v: k for k, v in _STATE_TO_PB.items()}
MAX_MESSAGE_RATE = 100_000


def _dec(value: Decimal) -> decimal_pb2.Decimal:
    return decimal_pb2.Decimal(value=format(value, "f"))


def _reason(name: str) -> errors_pb2.ErrorReason.ValueType:
    if not name:
        return errors_pb2.ERROR_REASON_UNSPECIFIED
    try:
        return errors_pb2.ErrorReason.Value("ERROR_REASON_" + name)
    except ValueError:
        return errors_pb2.ERROR_REASON_UNSPECIFIED


def execution_pb(e: Execution) -> execution_pb2.PrismExecution:
    pb = execution_pb2.PrismExecution(
        exec_sequence=e.exec_sequence,
        exec_id=e.exec_id,
        account_id=e.account_id,
        symbol=e.symbol,
        venue_order_id=e.venue_order_id,
        client_order_id=e.client_order_id,
        type=cast("execution_pb2.PrismExecutionType.ValueType", int(e.type)),
        order_status=cast("order_pb2.OrderStatus.ValueType", int(e.order_status)),
        side=cast("order_pb2.Side.ValueType", int(e.side)),
        cum_qty=_dec(e.cum_qty),
        leaves_qty=_dec(e.leaves_qty),
        fee_currency=e.fee_currency,
        liquidity=cast("fill_pb2.Liquidity.ValueType", int(e.liquidity)),
        trade_id=e.trade_id,
        reason=_reason(e.reason),
        text=e.text,
        event_time_ns=e.event_time_ns,
    )
    if e.last_price is not None:
        pb.last_price.CopyFrom(_dec(e.last_price))
    if e.last_qty is not None:
        pb.last_quantity.CopyFrom(_dec(e.last_qty))
    if e.fee is not None:
        pb.fee.CopyFrom(_dec(e.fee))
    return pb


def _place_pb(result: PlaceResult) -> prism_pb2.PlaceOrderResponse:
    return prism_pb2.PlaceOrderResponse(
        venue_order_id=result.venue_order_id,
        status=cast("order_pb2.OrderStatus.ValueType", int(result.status)),
        executions=[execution_pb(e) for e in result.executions],
        replayed=result.replayed,
    )


def _optional(msg: Any, name: str) -> str | None:
    return cast("str", getattr(msg, name).value) if msg.HasField(name) else None


class PrismServicer(prism_pb2_grpc.PrismServiceServicer):
    def __init__(self, runner: SimulationRunner, entry: OrderEntry, heartbeat_interval_s: float = 5.0) -> None:
        self.runner = runner
        self.entry = entry
        self.heartbeat_interval_s = heartbeat_interval_s

    # --- order entry -----------------------------------------------------------------------------------------------

    async def PlaceOrder(self, request: prism_pb2.PlaceOrderRequest, context: Context) -> prism_pb2.PlaceOrderResponse:
        if not request.HasField("spec"):
            raise invalid_argument(FieldViolation("spec", "required"))
        spec = request.spec
        order = OrderRequest(
            account_id=request.account_id,
            symbol=request.symbol,
            client_order_id=request.client_order_id,
            side=int(spec.side),
            order_type=int(spec.order_type),
            quantity=spec.quantity.value,
            limit_price=_optional(spec, "limit_price"),
            stop_price=_optional(spec, "stop_price"),
            time_in_force=int(spec.time_in_force),
            expire_time_ns=spec.expire_time_ns,
            post_only=spec.post_only,
            reduce_only=spec.reduce_only,
        )
        return _place_pb(await self.entry.place(order))

    async def CancelOrder(
        self, request: prism_pb2.CancelOrderRequest, context: Context
    ) -> prism_pb2.CancelOrderResponse:
        execution = await self.entry.cancel(request.account_id, request.venue_order_id, request.client_order_id)
        return prism_pb2.CancelOrderResponse(execution=execution_pb(execution))

    async def AmendOrder(self, request: prism_pb2.AmendOrderRequest, context: Context) -> prism_pb2.AmendOrderResponse:
        executions = await self.entry.amend(
            request.account_id,
            request.symbol,
            request.venue_order_id,
            _optional(request, "new_quantity"),
            _optional(request, "new_limit_price"),
        )
        return prism_pb2.AmendOrderResponse(executions=[execution_pb(e) for e in executions])

    async def StreamExecutions(  # type: ignore[override]  # writes with context.write: a client that goes away
        # cancels this coroutine at its current await, so the finally releases the queue at once
        self,
        request: prism_pb2.StreamExecutionsRequest,
        context: Context,
    ) -> None:
        sub, replay, dropped = self.entry.subscribe(request.account_id, request.after_exec_sequence)
        try:
            await context.send_initial_metadata(())  # headers now tell the client it is subscribed
            interval = self.heartbeat_interval_s
            if dropped:  # the client learns that retention no longer holds part of what it asked for
                heartbeat = stream_pb2.StreamHeartbeat(server_time_ns=time.time_ns(), dropped_count=dropped)
                await context.write(prism_pb2.StreamExecutionsResponse(heartbeat=heartbeat))
            last = request.after_exec_sequence
            for e in replay:
                await context.write(prism_pb2.StreamExecutionsResponse(execution=execution_pb(e)))
                last = e.exec_sequence
            next_hb = time.monotonic() + interval
            while True:
                await sub.wait(next_hb - time.monotonic())
                for e in sub.drain():
                    if e.exec_sequence > last:
                        await context.write(prism_pb2.StreamExecutionsResponse(execution=execution_pb(e)))
                        last = e.exec_sequence
                        next_hb = time.monotonic() + interval
                if time.monotonic() >= next_hb:
                    heartbeat = stream_pb2.StreamHeartbeat(server_time_ns=time.time_ns(), dropped_count=dropped)
                    await context.write(prism_pb2.StreamExecutionsResponse(heartbeat=heartbeat))
                    next_hb = time.monotonic() + interval
        finally:
            self.entry.unsubscribe(sub)

    # --- market data and simulation control ----------------------------------------------------------------------

    async def GetBook(self, request: prism_pb2.GetBookRequest, context: Context) -> prism_pb2.GetBookResponse:
        engine = self.runner.engine
        if not request.symbol:
            raise invalid_argument(FieldViolation("symbol", "required"))
        if request.symbol not in engine.symbols:
            raise DomainError("UNKNOWN_SYMBOL", f"unknown symbol {request.symbol!r}", ErrorKind.NOT_FOUND)
        book = engine.book(request.symbol)
        inst = book.instrument
        snap = book.snapshot(request.depth)
        now = self.runner.clock()
        pb = market_data_pb2.BookSnapshot(
            symbol=request.symbol,
            venue=venue_pb2.VENUE_PRISM,
            depth=request.depth,
            sequence=snap.update_id,
            event_time_ns=now,
            receive_time_ns=now,
        )
        for levels, prices in ((pb.bids, snap.bids), (pb.asks, snap.asks)):
            for price, qty, count in prices:
                levels.add(
                    price=_dec(inst.price_decimal(price)), quantity=_dec(inst.qty_decimal(qty)), order_count=count
                )
        return prism_pb2.GetBookResponse(book=pb)

    async def ListInstruments(
        self, request: prism_pb2.ListInstrumentsRequest, context: Context
    ) -> prism_pb2.ListInstrumentsResponse:
        engine = self.runner.engine
        instruments = []
        for symbol in engine.symbols:
            inst = engine.book(symbol).instrument
            instruments.append(
                instrument_pb2.Instrument(
                    symbol=inst.symbol,
                    base=inst.base,
                    quote=inst.quote,
                    tick_size=_dec(inst.tick_size),
                    lot_size=_dec(inst.lot_size),
                    min_notional=_dec(inst.min_notional_decimal),
                    status=instrument_pb2.INSTRUMENT_STATUS_TRADING,
                    venue=venue_pb2.VENUE_PRISM,
                    venue_symbol=inst.symbol,
                )
            )
        return prism_pb2.ListInstrumentsResponse(instruments=instruments)

    def _status(self) -> prism_pb2.GetSimulationStatusResponse:
        s = self.runner.status()
        return prism_pb2.GetSimulationStatusResponse(
            state=_STATE_TO_PB[s.state],
            seed=s.seed,
            message_rate=s.message_rate,
            participants=[
                prism_pb2.ParticipantConfig(
                    kind=cast("prism_pb2.ParticipantKind.ValueType", int(kind)),
                    enabled=s.enabled[kind],
                    count=s.counts[kind],
                )
                for kind in ParticipantKind
            ],
            messages_published=s.counters.messages_published,
            orders_entered=s.counters.orders_entered,
            trades=s.counters.trades,
            resting_orders=s.resting_orders,
            start_time_ns=s.start_time_ns,
        )

    async def GetSimulationStatus(
        self, request: prism_pb2.GetSimulationStatusRequest, context: Context
    ) -> prism_pb2.GetSimulationStatusResponse:
        return self._status()

    async def ConfigureSimulation(
        self, request: prism_pb2.ConfigureSimulationRequest, context: Context
    ) -> prism_pb2.ConfigureSimulationResponse:
        violations = []
        if request.HasField("message_rate") and not 0 < request.message_rate <= MAX_MESSAGE_RATE:
            violations.append(FieldViolation("message_rate", f"must be in 1..{MAX_MESSAGE_RATE}"))
        changes = []
        for i, p in enumerate(request.participants):
            if p.kind not in {int(k) for k in ParticipantKind}:
                violations.append(FieldViolation(f"participants[{i}].kind", "unknown participant kind"))
                continue
            if p.count > 100:
                violations.append(FieldViolation(f"participants[{i}].count", "at most 100 per instrument"))
                continue
            changes.append(ParticipantChange(ParticipantKind(p.kind), p.enabled, p.count or None))
        state = None
        if request.state != prism_pb2.SIMULATION_STATE_UNSPECIFIED:
            state = _PB_TO_STATE.get(request.state)
            if state is None:
                violations.append(FieldViolation("state", "unknown state"))
        if violations:
            raise invalid_argument(*violations)
        await self.runner.configure(
            seed=request.seed if request.HasField("seed") else None,
            message_rate=request.message_rate if request.HasField("message_rate") else None,
            participants=changes,
            state=state,
        )
        return prism_pb2.ConfigureSimulationResponse(status=self._status())
