"""The engine's child order port over trade.oms.v1 (SubmitOrder / CancelOrder / ListOrders)."""

from __future__ import annotations

import grpc
from trade.oms.v1 import oms_pb2, oms_pb2_grpc

from services.exeq.adapters.codec import child_from_order, child_spec, reason_name, status_name, venue_value
from services.exeq.adapters.grpc_errors import describe, is_transient, reason_of
from services.exeq.domain.model import ChildAck, ChildOrder, ParentOrder
from services.exeq.domain.ports import ChildRefused, TransientError

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
