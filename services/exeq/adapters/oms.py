"""The engine's child order port over trade.oms.v1 (SubmitOrder / CancelOrder / ListOrders), and the router's
placement record (GetOrder)."""

from __future__ import annotations

import grpc
import structlog
from trade.oms.v1 import events_pb2 as oms_events_pb2
from trade.oms.v1 import oms_pb2, oms_pb2_grpc
from trade.type.v1 import order_pb2

from services.exeq.adapters.codec import child_from_order, child_spec, reason_name, status_name, venue_value
from services.exeq.adapters.grpc_errors import describe, is_transient, reason_of
from services.exeq.domain.model import ChildAck, ChildOrder, ParentOrder
from services.exeq.domain.ports import ChildRefused, TransientError
from services.exeq.domain.router import OrderEventView, TransientGatewayError

log = structlog.get_logger("exeq.oms")

# Statuses an order can have before its venue answered the placement.
_BEFORE_VENUE_ANSWER = frozenset(
    {
        order_pb2.ORDER_STATUS_PENDING_NEW,
        order_pb2.ORDER_STATUS_PENDING_CANCEL,
        order_pb2.ORDER_STATUS_PENDING_REPLACE,
    }
)

# Cancels of children that are already done or unknown need nothing more: their final event arrives anyway.
_CANCEL_NOT_NEEDED = frozenset({"TOO_LATE_TO_CANCEL", "ORDER_NOT_FOUND"})


class OmsChildGateway:
    def __init__(self, channel: grpc.aio.Channel, deadline_s: float) -> None:
        self._stub = oms_pb2_grpc.OmsServiceStub(channel)
        self._deadline_s = deadline_s

    async def submit(self, parent: ParentOrder, child: ChildOrder) -> ChildAck:
        request = oms_pb2.SubmitOrderRequest(
            account_id=parent.account_id,
            symbol=parent.symbol,
            client_order_id=child.client_order_id,
            spec=child_spec(child, parent.side),
            venue=venue_value(child.venue),
            strategy_id=parent.strategy_id,
            parent_order_id=parent.parent_order_id,
        )
        try:
            response = await self._stub.SubmitOrder(request, timeout=self._deadline_s)
        except grpc.aio.AioRpcError as exc:
            if is_transient(exc):
                raise TransientError(describe(exc)) from exc
            raise ChildRefused(reason_of(exc) or exc.code().name, exc.details() or "") from exc
        order = response.order
        return ChildAck(
            order_id=order.order_id,
            status=status_name(order.status),
            version=order.version,
            reason=reason_name(order.reason),
            reason_message=order.reason_message,
            create_time_ns=order.create_time_ns,
        )

    async def cancel(self, parent: ParentOrder, child: ChildOrder) -> None:
        request = oms_pb2.CancelOrderRequest(account_id=parent.account_id, order_id=child.order_id)
        try:
            await self._stub.CancelOrder(request, timeout=self._deadline_s)
        except grpc.aio.AioRpcError as exc:
            if is_transient(exc):
                raise TransientError(describe(exc)) from exc
            if reason_of(exc) not in _CANCEL_NOT_NEEDED:
                raise

    async def list_children(self, parent: ParentOrder) -> list[ChildOrder]:
        children: list[ChildOrder] = []
        token = ""
        while True:
            request = oms_pb2.ListOrdersRequest(
                account_id=parent.account_id,
                parent_order_id=parent.parent_order_id,
                page_size=1000,
                page_token=token,
            )
            try:
                response = await self._stub.ListOrders(request, timeout=self._deadline_s)
            except grpc.aio.AioRpcError as exc:
                if is_transient(exc):
                    raise TransientError(describe(exc)) from exc
                raise
            children.extend(child_from_order(parent.parent_order_id, o) for o in response.orders)
            token = response.next_page_token
            if not token:
                return sorted(children, key=lambda c: c.n)


class OmsPlacementRecord:
    """Whether the OMS already holds a venue answer for an order (GetOrder)."""

    def __init__(self, channel: grpc.aio.Channel, deadline_s: float) -> None:
        self._stub = oms_pb2_grpc.OmsServiceStub(channel)
        self._deadline_s = deadline_s

    async def venue_answered(self, event: OrderEventView[oms_events_pb2.OrderEvent]) -> bool:
        request = oms_pb2.GetOrderRequest(account_id=event.account_id, order_id=event.order_id)
        try:
            order = (await self._stub.GetOrder(request, timeout=self._deadline_s)).order
        except grpc.aio.AioRpcError as exc:
            if is_transient(exc):
                raise TransientGatewayError(describe(exc)) from exc
            log.warning("exeq.placement_unknown", order_id=event.order_id, error=describe(exc))
            return False
        return venue_has_answered(order)


def venue_has_answered(order: order_pb2.Order) -> bool:
    return bool(order.venue_order_id) or order.status not in _BEFORE_VENUE_ANSWER
