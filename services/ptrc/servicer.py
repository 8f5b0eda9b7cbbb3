"""Translates trade.ptrc.v1 to the position service and back. No business rules here."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import re
import time
from typing import Any

import grpc
from trade.ptrc.v1 import ptrc_pb2, ptrc_pb2_grpc
from trade.type.v1 import stream_pb2

from services.ptrc.adapters.codec import dec, position_pb
from services.ptrc.adapters.hub import PositionHub
from services.ptrc.domain.service import PositionService
from services.runtime.errors import DomainError, ErrorKind, FieldViolation, Validator, invalid_argument

Context = grpc.aio.ServicerContext[Any, Any]

_ACCOUNT = re.compile(r"[A-Za-z0-9_-]{1,64}").fullmatch
_SYMBOL = re.compile(r"[A-Za-z0-9_.-]{1,64}").fullmatch
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 100, 1000


def _validate(account_id: str, symbols: list[str] | None = None, symbol_field: str = "symbols") -> None:
    v = Validator()
    v.require(bool(_ACCOUNT(account_id)), "account_id", "required: 1-64 characters from [A-Za-z0-9_-]")
    for i, symbol in enumerate(symbols or ()):
        name = symbol_field if symbol_field == "symbol" else f"{symbol_field}[{i}]"
        v.require(bool(_SYMBOL(symbol)), name, "required: 1-64 characters from [A-Za-z0-9_.-]")
    v.raise_if_any()


def _page_size(size: int) -> int:
    if size < 0:
        raise invalid_argument(FieldViolation("page_size", "must be >= 0"))
    return min(size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_token(symbol: str) -> str:
    return base64.urlsafe_b64encode(f"after:{symbol}".encode()).decode().rstrip("=")


def decode_token(token: str) -> str:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        text = ""
    if not text.startswith("after:"):
        raise invalid_argument(FieldViolation("page_token", "not a token from this RPC"), reason="INVALID_PAGE_TOKEN")
    return text.removeprefix("after:")


class PtrcServicer(ptrc_pb2_grpc.PtrcServiceServicer):
    def __init__(self, service: PositionService, hub: PositionHub, heartbeat_interval_s: float) -> None:
        self._service = service
        self._hub = hub
        self._heartbeat_s = heartbeat_interval_s

    def _require_ready(self) -> None:
        if not self._service.ready:
            raise DomainError(
                "SERVICE_NOT_READY", "positions are being rebuilt from the fill log", ErrorKind.UNAVAILABLE
            )

    async def GetPosition(self, request: ptrc_pb2.GetPositionRequest, context: Context) -> ptrc_pb2.GetPositionResponse:
        _validate(request.account_id, [request.symbol], "symbol")
        self._require_ready()
        position = self._service.book.get(request.account_id, request.symbol)
        return ptrc_pb2.GetPositionResponse(position=position_pb(position))

    async def ListPositions(
        self, request: ptrc_pb2.ListPositionsRequest, context: Context
    ) -> ptrc_pb2.ListPositionsResponse:
        _validate(request.account_id)
        size = _page_size(request.page_size)
        after = decode_token(request.page_token) if request.page_token else ""
        self._require_ready()
        positions = [
            p for p in self._service.book.positions(request.account_id, request.include_flat) if p.symbol > after
        ]
        page = positions[:size]
        token = encode_token(page[-1].symbol) if len(positions) > size else ""
        return ptrc_pb2.ListPositionsResponse(positions=[position_pb(p) for p in page], next_page_token=token)

    async def StreamPositions(  # type: ignore[override]  # writes with context.write
        self, request: ptrc_pb2.StreamPositionsRequest, context: Context
    ) -> None:
        _validate(request.account_id, list(request.symbols))
        self._require_ready()
        symbols = frozenset(request.symbols)
        # Subscribe before taking the snapshot: a change in between is sent again, never lost.
        sub = self._hub.subscribe(request.account_id, symbols)
        try:
            for position in self._service.book.positions(request.account_id):
                if not symbols or position.symbol in symbols:
                    update = ptrc_pb2.PositionUpdate(position=position_pb(position), snapshot=True)
                    await context.write(ptrc_pb2.StreamPositionsResponse(update=update))
            await context.write(ptrc_pb2.StreamPositionsResponse(heartbeat=self._heartbeat(sub.conflated)))
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(sub.signal.wait(), self._heartbeat_s)
                changed = sub.drain()
                for position in changed:
                    update = ptrc_pb2.PositionUpdate(position=position_pb(position), snapshot=False)
                    await context.write(ptrc_pb2.StreamPositionsResponse(update=update))
                if not changed:
                    await context.write(ptrc_pb2.StreamPositionsResponse(heartbeat=self._heartbeat(sub.conflated)))
        finally:
            self._hub.unsubscribe(sub)

    @staticmethod
    def _heartbeat(conflated: int) -> stream_pb2.StreamHeartbeat:
        return stream_pb2.StreamHeartbeat(server_time_ns=time.time_ns(), conflated_count=conflated)

    async def Reconcile(self, request: ptrc_pb2.ReconcileRequest, context: Context) -> ptrc_pb2.ReconcileResponse:
        _validate(request.account_id, list(request.symbols))
        self._require_ready()
        report = await self._service.reconcile(request.account_id, frozenset(request.symbols), request.apply)
        differences = []
        for diff in report.differences:
            out = ptrc_pb2.PositionDifference(
                symbol=diff.symbol,
                recomputed=position_pb(diff.recomputed),
                quantity_difference=dec(diff.quantity_difference),
                mismatched_fill_ids=list(diff.mismatched_fill_ids),
            )
            if diff.stored is not None:
                out.stored.CopyFrom(position_pb(diff.stored))
            differences.append(out)
        return ptrc_pb2.ReconcileResponse(
            differences=differences,
            symbols_checked=report.symbols_checked,
            fills_replayed=report.fills_replayed,
            applied=report.applied,
            fill_log_sequence=report.fill_log_sequence,
        )
