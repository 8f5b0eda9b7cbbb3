"""The router's gateway port over trade.live_gateway.v1 (PlaceOrder / CancelOrder / AmendOrder)."""

from __future__ import annotations

import grpc
from trade.live_gateway.v1 import live_gateway_pb2, live_gateway_pb2_grpc
from trade.oms.v1 import events_pb2 as oms_events_pb2
from trade.type.v1 import order_pb2

from services.exeq.adapters.codec import venue_value
from services.exeq.adapters.grpc_errors import describe, is_transient
from services.exeq.domain.router import GatewayAnswer, OrderEventView, TransientGatewayError

Event = OrderEventView[oms_events_pb2.OrderEvent]


class LiveGatewayClient:
    def __init__(self, channel: grpc.aio.Channel, deadline_s: float) -> None:
        self._stub = live_gateway_pb2_grpc.LiveGatewayServiceStub(channel)
        self._deadline_s = deadline_s

    async def place(self, event: Event, venue: str) -> GatewayAnswer:
        e = event.payload
        request = live_gateway_pb2.PlaceOrderRequest(
            account_id=e.account_id,
            symbol=e.symbol,
            venue=venue_value(venue),
            order_id=event.order_id,
            client_order_id=e.client_order_id or e.order.client_order_id,
            spec=e.order.spec,
        )
        try:
            response = await self._stub.PlaceOrder(request, timeout=self._deadline_s)
        except grpc.aio.AioRpcError as exc:
            return self._refused(exc)
        rejected = response.status == order_pb2.ORDER_STATUS_REJECTED
        return GatewayAnswer(not rejected, "venue rejected" if rejected else response.venue_order_id)

    async def cancel(self, event: Event, venue: str) -> GatewayAnswer:
        e = event.payload
        request = live_gateway_pb2.CancelOrderRequest(
            account_id=e.account_id,
            symbol=e.symbol,
            venue=venue_value(venue),
            order_id=event.order_id,
            venue_order_id=e.order.venue_order_id,
        )
        try:
            response = await self._stub.CancelOrder(request, timeout=self._deadline_s)
        except grpc.aio.AioRpcError as exc:
            return self._refused(exc)
        return GatewayAnswer(response.accepted)

    async def amend(self, event: Event, venue: str) -> GatewayAnswer:
        e = event.payload
        request = live_gateway_pb2.AmendOrderRequest(
            account_id=e.account_id,
            symbol=e.symbol,
            venue=venue_value(venue),
            order_id=event.order_id,
            venue_order_id=e.order.venue_order_id,
            new_spec=e.replace_requested.new_spec,
            order_version=event.version,
        )
        try:
            response = await self._stub.AmendOrder(request, timeout=self._deadline_s)
        except grpc.aio.AioRpcError as exc:
            return self._refused(exc)
        return GatewayAnswer(response.accepted, response.venue_order_id)

    @staticmethod
    def _refused(exc: grpc.aio.AioRpcError) -> GatewayAnswer:
        if is_transient(exc):
            raise TransientGatewayError(describe(exc)) from exc
        return GatewayAnswer(False, describe(exc))
