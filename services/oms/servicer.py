"""Translates trade.oms.v1 protobuf to OMS domain commands and queries, and back. No business rules here."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
from trade.oms.v1 import oms_pb2, oms_pb2_grpc
from trade.type.v1 import decimal_pb2, order_pb2, stream_pb2

from services.oms.adapters.codec import (
    SIDE_FROM_PB,
    STATUS_FROM_PB,
    TIF_FROM_PB,
    TYPE_FROM_PB,
    event_to_pb,
    fill_to_pb,
    order_to_pb,
    venue_name,
)
from services.oms.domain.model import Fill, OrderChange
from services.oms.domain.service import Amend, FillQuery, NewOrder, Oms, OrderQuery, Subscription
from services.oms.domain.validation import (
    RawSpec,
    check_account,
    check_client_order_id,
    check_symbol,
    parse_decimal,
    parse_spec,
)
from services.runtime.errors import DomainError, ErrorKind, Validator
from services.runtime.identity import Principal, principal_from_metadata
from services.runtime.status import to_status

Context = grpc.aio.ServicerContext[Any, Any]
MAX_ID = 64


def _principal(context: Context) -> Principal | None:
    return principal_from_metadata(context.invocation_metadata())


def _text(msg: decimal_pb2.Decimal, present: bool) -> str | None:
    return msg.value if present else None


def _raw_spec(spec: order_pb2.OrderSpec) -> RawSpec:
    return RawSpec(
        side=SIDE_FROM_PB.get(spec.side),
        order_type=TYPE_FROM_PB.get(spec.order_type),
        quantity=_text(spec.quantity, spec.HasField("quantity")),
        limit_price=_text(spec.limit_price, spec.HasField("limit_price")),
        stop_price=_text(spec.stop_price, spec.HasField("stop_price")),
        time_in_force=TIF_FROM_PB.get(spec.time_in_force),
        expire_time_ns=spec.expire_time_ns,
        post_only=spec.post_only,
        reduce_only=spec.reduce_only,
    )


def _account_only(account_id: str) -> None:
    v = Validator()
    check_account(v, account_id)
    v.raise_if_any()


def _one_id(v: Validator, order_id: str, client_order_id: str) -> None:
    v.require(bool(order_id) != bool(client_order_id), "order_id", "set exactly one of order_id and client_order_id")
    v.require(len(order_id) <= MAX_ID, "order_id", "at most 64 characters")
    if client_order_id:
        check_client_order_id(v, client_order_id)


class OmsServicer(oms_pb2_grpc.OmsServiceServicer):
    def __init__(self, oms: Oms, heartbeat_s: float = 5.0) -> None:
        self.oms = oms
        self.heartbeat_s = heartbeat_s

    async def SubmitOrder(self, request: oms_pb2.SubmitOrderRequest, context: Context) -> oms_pb2.SubmitOrderResponse:
        v = Validator()
        check_account(v, request.account_id)
        check_symbol(v, request.symbol)
        check_client_order_id(v, request.client_order_id)
        v.require(len(request.strategy_id) <= MAX_ID, "strategy_id", "at most 64 characters")
        v.require(len(request.parent_order_id) <= MAX_ID, "parent_order_id", "at most 64 characters")
        venue = venue_name(request.venue)
        v.require(bool(venue) or request.venue == 0, "venue", "unknown venue")
        spec = parse_spec(v, _raw_spec(request.spec) if request.HasField("spec") else None, time.time_ns())
        v.raise_if_any()
        assert spec is not None
        order, replayed = await self.oms.submit(
            NewOrder(
                account_id=request.account_id,
                symbol=request.symbol,
                client_order_id=request.client_order_id,
                spec=spec,
                venue=venue,
                strategy_id=request.strategy_id,
                parent_order_id=request.parent_order_id,
            )
        )
        return oms_pb2.SubmitOrderResponse(order=order_to_pb(order), replayed=replayed)

    async def CancelOrder(self, request: oms_pb2.CancelOrderRequest, context: Context) -> oms_pb2.CancelOrderResponse:
        v = Validator()
        check_account(v, request.account_id)
        _one_id(v, request.order_id, request.client_order_id)
        v.raise_if_any()
        order = await self.oms.cancel(
            request.account_id, request.order_id, request.client_order_id, _principal(context)
        )
        return oms_pb2.CancelOrderResponse(order=order_to_pb(order))

    async def AmendOrder(self, request: oms_pb2.AmendOrderRequest, context: Context) -> oms_pb2.AmendOrderResponse:
        v = Validator()
        check_account(v, request.account_id)
        check_symbol(v, request.symbol)
        v.require(0 < len(request.order_id) <= MAX_ID, "order_id", "required")
        quantity = parse_decimal(v, "new_quantity", _text(request.new_quantity, request.HasField("new_quantity")))
        limit = parse_decimal(v, "new_limit_price", _text(request.new_limit_price, request.HasField("new_limit_price")))
        stop = parse_decimal(v, "new_stop_price", _text(request.new_stop_price, request.HasField("new_stop_price")))
        v.require(
            any(request.HasField(f) for f in ("new_quantity", "new_limit_price", "new_stop_price")),
            "new_quantity",
            "set at least one of new_quantity, new_limit_price, new_stop_price",
        )
        v.raise_if_any()
        order = await self.oms.amend(
            Amend(
                account_id=request.account_id,
                symbol=request.symbol,
                order_id=request.order_id,
                new_quantity=quantity,
                new_limit_price=limit,
                new_stop_price=stop,
                expected_version=request.expected_version,
            ),
            _principal(context),
        )
        return oms_pb2.AmendOrderResponse(order=order_to_pb(order))

    async def GetOrder(self, request: oms_pb2.GetOrderRequest, context: Context) -> oms_pb2.GetOrderResponse:
        v = Validator()
        check_account(v, request.account_id)
        _one_id(v, request.order_id, request.client_order_id)
        v.raise_if_any()
        order = self.oms.get(request.account_id, request.order_id, request.client_order_id, _principal(context))
        return oms_pb2.GetOrderResponse(order=order_to_pb(order))

    async def ListOrders(self, request: oms_pb2.ListOrdersRequest, context: Context) -> oms_pb2.ListOrdersResponse:
        v = Validator()
        check_account(v, request.account_id)
        statuses = []
        for i, status in enumerate(request.statuses):
            v.require(status in STATUS_FROM_PB, f"statuses[{i}]", "unknown or unspecified status")
            if status in STATUS_FROM_PB:
                statuses.append(STATUS_FROM_PB[status])
        v.require(request.page_size >= 0, "page_size", "must not be negative")
        v.raise_if_any()
        orders, token = self.oms.list_orders(
            OrderQuery(
                account_id=request.account_id,
                symbol=request.symbol,
                statuses=frozenset(statuses),
                start_time_ns=request.start_time_ns,
                end_time_ns=request.end_time_ns,
                open_only=request.open_only,
                parent_order_id=request.parent_order_id,
                page_size=request.page_size,
                page_token=request.page_token,
            )
        )
        return oms_pb2.ListOrdersResponse(orders=[order_to_pb(o) for o in orders], next_page_token=token)

    async def CancelAllOrders(
        self, request: oms_pb2.CancelAllOrdersRequest, context: Context
    ) -> oms_pb2.CancelAllOrdersResponse:
        _account_only(request.account_id)
        side = SIDE_FROM_PB.get(request.side)
        canceled, failures = await self.oms.cancel_all(request.account_id, request.symbol, side, _principal(context))
        return oms_pb2.CancelAllOrdersResponse(
            canceled_order_ids=canceled,
            failures=[oms_pb2.CancelFailure(order_id=oid, status=to_status(err)) for oid, err in failures],
        )

    async def StreamOrderUpdates(
        self, request: oms_pb2.StreamOrderUpdatesRequest, context: Context
    ) -> AsyncIterator[oms_pb2.StreamOrderUpdatesResponse]:
        _account_only(request.account_id)
        snapshot, sub = self.oms.subscribe_orders(request.account_id, frozenset(request.symbols))
        try:
            if request.include_open_orders:
                yield oms_pb2.StreamOrderUpdatesResponse(
                    snapshot=oms_pb2.OpenOrdersSnapshot(orders=[order_to_pb(o) for o in snapshot])
                )
            async for item in self._drain(sub):
                if isinstance(item, OrderChange):
                    yield oms_pb2.StreamOrderUpdatesResponse(event=event_to_pb(item))
                elif item is None:
                    yield oms_pb2.StreamOrderUpdatesResponse(heartbeat=_heartbeat())
        finally:
            self.oms.unsubscribe(sub)

    async def StreamFills(
        self, request: oms_pb2.StreamFillsRequest, context: Context
    ) -> AsyncIterator[oms_pb2.StreamFillsResponse]:
        _account_only(request.account_id)
        replay, sub = self.oms.subscribe_fills(
            request.account_id, frozenset(request.symbols), request.replay_since_time_ns
        )
        try:
            for fill in replay:
                yield oms_pb2.StreamFillsResponse(fill=fill_to_pb(fill))
            async for item in self._drain(sub):
                if isinstance(item, Fill):
                    yield oms_pb2.StreamFillsResponse(fill=fill_to_pb(item))
                elif item is None:
                    yield oms_pb2.StreamFillsResponse(heartbeat=_heartbeat())
        finally:
            self.oms.unsubscribe(sub)

    async def _drain(self, sub: Subscription) -> AsyncIterator[OrderChange | Fill | None]:
        """The subscription's items; None when a heartbeat is due. Ends the call when the client lags too far."""
        while True:
            if sub.overflowed:
                raise DomainError(
                    "SLOW_CONSUMER", "the stream fell too far behind and was closed", ErrorKind.RESOURCE_EXHAUSTED
                )
            try:
                yield await asyncio.wait_for(sub.queue.get(), self.heartbeat_s)
            except TimeoutError:
                yield None

    async def ListFills(self, request: oms_pb2.ListFillsRequest, context: Context) -> oms_pb2.ListFillsResponse:
        v = Validator()
        check_account(v, request.account_id)
        v.require(request.page_size >= 0, "page_size", "must not be negative")
        v.raise_if_any()
        fills, token = self.oms.list_fills(
            FillQuery(
                account_id=request.account_id,
                symbol=request.symbol,
                order_id=request.order_id,
                start_time_ns=request.start_time_ns,
                end_time_ns=request.end_time_ns,
                page_size=request.page_size,
                page_token=request.page_token,
            )
        )
        return oms_pb2.ListFillsResponse(fills=[fill_to_pb(f) for f in fills], next_page_token=token)


def _heartbeat() -> stream_pb2.StreamHeartbeat:
    return stream_pb2.StreamHeartbeat(server_time_ns=time.time_ns())
