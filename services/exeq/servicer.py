"""Translates trade.exeq.v1 to the execution engine and back. No business rules here."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from nats.aio.subscription import Subscription
from trade.exeq.v1 import events_pb2 as exeq_events_pb2
from trade.exeq.v1 import exeq_pb2, exeq_pb2_grpc
from trade.type.v1 import stream_pb2

from services.exeq.adapters.codec import (
    algo_from,
    child_order_pb,
    optional_decimal,
    params_from,
    parent_pb,
    side_name,
    status_from,
)
from services.exeq.domain.engine import ExecutionEngine
from services.exeq.domain.model import ParentStatus, SubmitParent
from services.exeq.domain.paging import page
from services.runtime.errors import DomainError, ErrorKind, FieldViolation, Validator, invalid_argument
from services.runtime.identity import principal_from_metadata

Context = grpc.aio.ServicerContext[Any, Any]
EventSubscriber = Callable[[str], Awaitable[tuple[Subscription, asyncio.Queue[exeq_events_pb2.ParentOrderEvent]]]]


def _require(**fields: str) -> None:
    v = Validator()
    for name, value in fields.items():
        v.require(bool(value), name, "required")
    v.raise_if_any()


def _authorize(context: Context, account_id: str) -> None:
    """Behind the edge the caller's identity is verified; an internal call (no identity) is trusted."""
    principal = principal_from_metadata(context.invocation_metadata())
    if principal is not None and not principal.may_act_on(account_id):
        raise DomainError(
            "ACCOUNT_NOT_PERMITTED",
            f"the caller may not act on account {account_id!r}",
            ErrorKind.PERMISSION_DENIED,
            metadata={"account_id": account_id},
        )


class ExeqServicer(exeq_pb2_grpc.ExeqServiceServicer):
    def __init__(self, engine: ExecutionEngine, subscribe: EventSubscriber, heartbeat_s: float = 5.0) -> None:
        self._engine = engine
        self._subscribe = subscribe
        self._heartbeat_s = heartbeat_s

    async def SubmitParentOrder(
        self, request: exeq_pb2.SubmitParentOrderRequest, context: Context
    ) -> exeq_pb2.SubmitParentOrderResponse:
        _authorize(context, request.account_id)
        cmd = SubmitParent(
            account_id=request.account_id,
            symbol=request.symbol,
            client_order_id=request.client_order_id,
            side=side_name(request.side),
            quantity=optional_decimal(request, "quantity", "quantity"),
            limit_price=optional_decimal(request, "limit_price", "limit_price"),
            algo=algo_from(request.algo),
            params=params_from(request.params),
            strategy_id=request.strategy_id,
        )
        parent, replayed = await self._engine.submit(cmd)
        return exeq_pb2.SubmitParentOrderResponse(parent_order=parent_pb(parent), replayed=replayed)

    async def GetParentOrder(
        self, request: exeq_pb2.GetParentOrderRequest, context: Context
    ) -> exeq_pb2.GetParentOrderResponse:
        _require(account_id=request.account_id, parent_order_id=request.parent_order_id)
        _authorize(context, request.account_id)
        parent = self._engine.get(request.account_id, request.parent_order_id)
        return exeq_pb2.GetParentOrderResponse(parent_order=parent_pb(parent))

    async def ListParentOrders(
        self, request: exeq_pb2.ListParentOrdersRequest, context: Context
    ) -> exeq_pb2.ListParentOrdersResponse:
        _require(account_id=request.account_id)
        _authorize(context, request.account_id)
        statuses: list[ParentStatus] = []
        for value in request.statuses:
            status = status_from(value)
            if status is None:
                raise invalid_argument(FieldViolation("statuses", "unknown or unspecified status"))
            statuses.append(status)
        parents = self._engine.list_parents(request.account_id, request.symbol, statuses)
        filters = f"{request.account_id}|{request.symbol}|{sorted(s.value for s in statuses)}"
        chosen, token = page(parents, request.page_size, request.page_token, filters)
        return exeq_pb2.ListParentOrdersResponse(parent_orders=[parent_pb(p) for p in chosen], next_page_token=token)

    async def ListChildOrders(
        self, request: exeq_pb2.ListChildOrdersRequest, context: Context
    ) -> exeq_pb2.ListChildOrdersResponse:
        _require(account_id=request.account_id, parent_order_id=request.parent_order_id)
        _authorize(context, request.account_id)
        parent = self._engine.get(request.account_id, request.parent_order_id)
        children = sorted(parent.children, key=lambda c: c.n)
        filters = f"{request.account_id}|{request.parent_order_id}"
        chosen, token = page(children, request.page_size, request.page_token, filters)
        return exeq_pb2.ListChildOrdersResponse(
            orders=[child_order_pb(parent, c) for c in chosen], next_page_token=token
        )

    async def CancelParentOrder(
        self, request: exeq_pb2.CancelParentOrderRequest, context: Context
    ) -> exeq_pb2.CancelParentOrderResponse:
        _require(account_id=request.account_id, parent_order_id=request.parent_order_id)
        _authorize(context, request.account_id)
        parent = await self._engine.cancel(request.account_id, request.parent_order_id, request.reason)
        return exeq_pb2.CancelParentOrderResponse(parent_order=parent_pb(parent))

    async def StreamParentOrderUpdates(
        self, request: exeq_pb2.StreamParentOrderUpdatesRequest, context: Context
    ) -> AsyncIterator[exeq_pb2.StreamParentOrderUpdatesResponse]:
        _require(account_id=request.account_id)
        _authorize(context, request.account_id)
        sub, queue = await self._subscribe(request.account_id)
        try:
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), self._heartbeat_s)
                except TimeoutError:
                    heartbeat = stream_pb2.StreamHeartbeat(server_time_ns=time.time_ns())
                    yield exeq_pb2.StreamParentOrderUpdatesResponse(heartbeat=heartbeat)
                    continue
                if request.parent_order_id and event.parent_order.parent_order_id != request.parent_order_id:
                    continue
                yield exeq_pb2.StreamParentOrderUpdatesResponse(event=event)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
