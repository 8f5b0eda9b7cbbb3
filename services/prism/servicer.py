"""Translates trade.prism.v1.PrismService requests to the live engine/simulation and back.

Implemented: GetBook, ListInstruments, GetSimulationStatus, ConfigureSimulation. Not yet: PlaceOrder, CancelOrder,
AmendOrder, StreamExecutions (member order entry) -- they are left to the generated base class, which answers
UNIMPLEMENTED.
"""

from __future__ import annotations

from typing import Any, cast

import grpc
from trade.prism.v1 import prism_pb2, prism_pb2_grpc
from trade.type.v1 import decimal_pb2, instrument_pb2, market_data_pb2, venue_pb2

from services.prism.domain.participants import ParticipantKind
from services.prism.runner import ParticipantChange, RunState, SimulationRunner
from services.runtime.errors import DomainError, ErrorKind, FieldViolation, invalid_argument

Context = grpc.aio.ServicerContext[Any, Any]

_STATE_TO_PB = {
    RunState.RUNNING: prism_pb2.SIMULATION_STATE_RUNNING,
    RunState.PAUSED: prism_pb2.SIMULATION_STATE_PAUSED,
}
_PB_TO_STATE = {v: k for k, v in _STATE_TO_PB.items()}
MAX_MESSAGE_RATE = 100_000


def _dec(value: object) -> decimal_pb2.Decimal:
    return decimal_pb2.Decimal(value=str(value))


class PrismServicer(prism_pb2_grpc.PrismServiceServicer):
    def __init__(self, runner: SimulationRunner) -> None:
        self.runner = runner

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
