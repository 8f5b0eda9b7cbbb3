"""Translates trade.pnl.v1 to the PnL ledger and back. No business rules here."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import datetime as dt
import re
import time
from typing import Any

import grpc
from trade.pnl.v1 import pnl_pb2, pnl_pb2_grpc
from trade.type.v1 import stream_pb2

from services.pnl.adapters.codec import figures_pb, snapshot_pb
from services.pnl.adapters.daily import DailySnapshotStore
from services.pnl.adapters.hub import PnlHub
from services.pnl.domain.model import SnapshotKind
from services.pnl.domain.service import PnlService
from services.runtime.errors import DomainError, ErrorKind, FieldViolation, Validator, invalid_argument

Context = grpc.aio.ServicerContext[Any, Any]

_ACCOUNT = re.compile(r"[A-Za-z0-9_-]{1,64}").fullmatch
_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,128}").fullmatch
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 100, 1000
DEFAULT_STREAM_INTERVAL_MS = 1000


def _validate(account_id: str, symbol: str = "", strategy_id: str = "") -> None:
    v = Validator()
    v.require(bool(_ACCOUNT(account_id)), "account_id", "required: 1-64 characters from [A-Za-z0-9_-]")
    v.require(not symbol or bool(_NAME(symbol)), "symbol", "1-128 characters from [A-Za-z0-9_.:-]")
    v.require(not strategy_id or bool(_NAME(strategy_id)), "strategy_id", "1-128 characters from [A-Za-z0-9_.:-]")
    v.raise_if_any()


def _is_day(text: str) -> bool:
    try:
        return dt.date.fromisoformat(text).isoformat() == text
    except ValueError:
        return False


def encode_token(day: str) -> str:
    return base64.urlsafe_b64encode(f"before:{day}".encode()).decode().rstrip("=")


def decode_token(token: str) -> str:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        text = ""
    day = text.removeprefix("before:")
    if not text.startswith("before:") or not _is_day(day):
        raise invalid_argument(FieldViolation("page_token", "not a token from this RPC"), reason="INVALID_PAGE_TOKEN")
    return day


class PnlServicer(pnl_pb2_grpc.PnlServiceServicer):
    def __init__(
        self,
        service: PnlService,
        hub: PnlHub,
        daily: DailySnapshotStore,
        min_stream_interval_ms: int,
        heartbeat_interval_s: float,
    ) -> None:
        self._service = service
        self._hub = hub
        self._daily = daily
        self._floor_ms = min_stream_interval_ms
        self._heartbeat_s = heartbeat_interval_s

    def _require_ready(self) -> None:
        if not self._service.ready:
            raise DomainError("SERVICE_NOT_READY", "PnL is being rebuilt from the fill log", ErrorKind.UNAVAILABLE)

    async def GetPnl(self, request: pnl_pb2.GetPnlRequest, context: Context) -> pnl_pb2.GetPnlResponse:
        _validate(request.account_id, request.symbol, request.strategy_id)
        self._require_ready()
        view = self._service.ledger.breakdown(request.account_id, request.symbol, request.strategy_id, time.time_ns())
        return pnl_pb2.GetPnlResponse(
            total=figures_pb(view.total),
            by_symbol=[figures_pb(f) for f in view.by_symbol],
            by_strategy=[figures_pb(f) for f in view.by_strategy],
        )

    def _snapshot(self, request: pnl_pb2.StreamPnlRequest) -> pnl_pb2.StreamPnlResponse:
        snapshot = self._service.ledger.snapshot(
            request.account_id,
            SnapshotKind.INTRADAY,
            time.time_ns(),
            symbol=request.symbol,
            strategy_id=request.strategy_id,
        )
        return pnl_pb2.StreamPnlResponse(snapshot=snapshot_pb(snapshot))

    async def StreamPnl(  # type: ignore[override]  # writes with context.write
        self, request: pnl_pb2.StreamPnlRequest, context: Context
    ) -> None:
        _validate(request.account_id, request.symbol, request.strategy_id)
        self._require_ready()
        interval_s = max(request.min_interval_ms or DEFAULT_STREAM_INTERVAL_MS, self._floor_ms) / 1000
        sub = self._hub.subscribe(request.account_id)
        try:
            await context.write(self._snapshot(request))
            last_sent = last_write = time.monotonic()
            while True:
                timeout = self._heartbeat_s - (time.monotonic() - last_write)
                if sub.mark_changed:
                    timeout = min(timeout, last_sent + interval_s - time.monotonic())
                if timeout > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(sub.signal.wait(), timeout)
                sub.signal.clear()
                now = time.monotonic()
                if sub.fill_changed or (sub.mark_changed and now - last_sent >= interval_s):
                    sub.fill_changed = sub.mark_changed = False
                    await context.write(self._snapshot(request))
                    last_sent = last_write = now
                elif now - last_write >= self._heartbeat_s:
                    heartbeat = stream_pb2.StreamHeartbeat(server_time_ns=time.time_ns(), conflated_count=sub.conflated)
                    await context.write(pnl_pb2.StreamPnlResponse(heartbeat=heartbeat))
                    last_write = now
        finally:
            self._hub.unsubscribe(sub)

    async def ListDailySnapshots(
        self, request: pnl_pb2.ListDailySnapshotsRequest, context: Context
    ) -> pnl_pb2.ListDailySnapshotsResponse:
        _validate(request.account_id)
        v = Validator()
        v.require(not request.start_day or _is_day(request.start_day), "start_day", "a date YYYY-MM-DD")
        v.require(not request.end_day or _is_day(request.end_day), "end_day", "a date YYYY-MM-DD")
        v.require(request.page_size >= 0, "page_size", "must be >= 0")
        v.raise_if_any()
        if request.start_day and request.end_day and request.start_day > request.end_day:
            raise invalid_argument(FieldViolation("end_day", "must not be before start_day"))
        size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        before = decode_token(request.page_token) if request.page_token else ""
        found = [
            s
            for s in self._daily.list(request.account_id, request.start_day, request.end_day)
            if not before or s.trading_day < before
        ]
        page = found[:size]
        token = encode_token(page[-1].trading_day) if len(found) > size else ""
        return pnl_pb2.ListDailySnapshotsResponse(snapshots=page, next_page_token=token)
