"""In-process fakes of exeq's gRPC dependencies (live-gateway, OMS) and an in-process exeq on the real NATS."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import grpc
from trade.exeq.v1 import exeq_pb2_grpc
from trade.live_gateway.v1 import live_gateway_pb2, live_gateway_pb2_grpc
from trade.oms.v1 import oms_pb2, oms_pb2_grpc
from trade.type.v1 import order_pb2

from services.exeq.bootstrap import SERVICE_NAME, Exeq, compose
from services.exeq.settings import ExeqSettings, InstrumentConfig
from services.runtime.server import Registration, RunningServer, start_server

Context = grpc.aio.ServicerContext[Any, Any]


class FakeLiveGateway(live_gateway_pb2_grpc.LiveGatewayServiceServicer):
    """Records every call; answers UNAVAILABLE `unavailable` times first; PlaceOrder can be slowed down."""

    def __init__(self) -> None:
        self.places: list[live_gateway_pb2.PlaceOrderRequest] = []
        self.cancels: list[live_gateway_pb2.CancelOrderRequest] = []
        self.amends: list[live_gateway_pb2.AmendOrderRequest] = []
        self.attempts = 0
        self.unavailable = 0
        self.place_delay_s = 0.0

    async def _maybe_fail(self, context: Context) -> None:
        self.attempts += 1
        if self.unavailable > 0:
            self.unavailable -= 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "venue connection down")

    async def PlaceOrder(
        self, request: live_gateway_pb2.PlaceOrderRequest, context: Context
    ) -> live_gateway_pb2.PlaceOrderResponse:
        await self._maybe_fail(context)
        if self.place_delay_s:
            await asyncio.sleep(self.place_delay_s)
        self.places.append(request)
        return live_gateway_pb2.PlaceOrderResponse(
            venue_order_id=f"V-{request.order_id}", status=order_pb2.ORDER_STATUS_NEW
        )

    async def CancelOrder(
        self, request: live_gateway_pb2.CancelOrderRequest, context: Context
    ) -> live_gateway_pb2.CancelOrderResponse:
        await self._maybe_fail(context)
        self.cancels.append(request)
        return live_gateway_pb2.CancelOrderResponse(accepted=True)

    async def AmendOrder(
        self, request: live_gateway_pb2.AmendOrderRequest, context: Context
    ) -> live_gateway_pb2.AmendOrderResponse:
        await self._maybe_fail(context)
        self.amends.append(request)
        return live_gateway_pb2.AmendOrderResponse(accepted=True)


class FakeOms(oms_pb2_grpc.OmsServiceServicer):
    """SubmitOrder idempotent per (account, client_order_id); orders stay PENDING_NEW unless a test says more."""

    def __init__(self) -> None:
        self.submits: list[oms_pb2.SubmitOrderRequest] = []
        self.orders: dict[tuple[str, str], order_pb2.Order] = {}
        self.cancels: list[oms_pb2.CancelOrderRequest] = []

    async def SubmitOrder(self, request: oms_pb2.SubmitOrderRequest, context: Context) -> oms_pb2.SubmitOrderResponse:
        self.submits.append(request)
        key = (request.account_id, request.client_order_id)
        known = self.orders.get(key)
        if known is not None:
            return oms_pb2.SubmitOrderResponse(order=known, replayed=True)
        now = time.time_ns()
        order = order_pb2.Order(
            order_id=f"OMS-{uuid.uuid4().hex[:12]}",
            client_order_id=request.client_order_id,
            account_id=request.account_id,
            symbol=request.symbol,
            spec=request.spec,
            status=order_pb2.ORDER_STATUS_PENDING_NEW,
            cum_qty=order_pb2.Order().cum_qty,
            venue=request.venue,
            strategy_id=request.strategy_id,
            parent_order_id=request.parent_order_id,
            create_time_ns=now,
            update_time_ns=now,
            version=1,
        )
        order.cum_qty.value = "0"
        order.leaves_qty.CopyFrom(request.spec.quantity)
        self.orders[key] = order
        return oms_pb2.SubmitOrderResponse(order=order)

    async def CancelOrder(self, request: oms_pb2.CancelOrderRequest, context: Context) -> oms_pb2.CancelOrderResponse:
        self.cancels.append(request)
        return oms_pb2.CancelOrderResponse()

    async def GetOrder(self, request: oms_pb2.GetOrderRequest, context: Context) -> oms_pb2.GetOrderResponse:
        for (account, _), order in self.orders.items():
            if account == request.account_id and order.order_id == request.order_id:
                return oms_pb2.GetOrderResponse(order=order)
        await context.abort(grpc.StatusCode.NOT_FOUND, f"order {request.order_id} not found")
        raise AssertionError("unreachable")

    async def ListOrders(self, request: oms_pb2.ListOrdersRequest, context: Context) -> oms_pb2.ListOrdersResponse:
        orders = [
            o
            for (account, _), o in self.orders.items()
            if account == request.account_id and o.parent_order_id == request.parent_order_id
        ]
        return oms_pb2.ListOrdersResponse(orders=orders)


@dataclass
class Fakes:
    gateway: FakeLiveGateway = field(default_factory=FakeLiveGateway)
    oms: FakeOms = field(default_factory=FakeOms)
    server: grpc.aio.Server | None = None
    port: int = 0

    async def start(self) -> None:
        self.server = grpc.aio.server()
        live_gateway_pb2_grpc.add_LiveGatewayServiceServicer_to_server(self.gateway, self.server)
        oms_pb2_grpc.add_OmsServiceServicer_to_server(self.oms, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(0)


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8].upper()}"


def exeq_settings(fakes: Fakes, account: str, symbol: str, tag: str, **overrides: Any) -> ExeqSettings:
    target = f"127.0.0.1:{fakes.port}"
    values: dict[str, Any] = {
        "port": 0,
        "live_gateway_target": target,
        "oms_target": target,
        "orders_subject": f"orders.{account}.>",
        "router_durable": f"test-exeq-router-{tag}",
        "children_durable": f"test-exeq-children-{tag}",
        "parents_filter": f"exeq.parent.{account}.>",
        "instruments": [InstrumentConfig(symbol=symbol, lot_size="0.001")],
        "stream_heartbeat_s": 0.5,
        "shutdown_grace_s": 0.5,
        "log_json": False,
    }
    values.update(overrides)
    return ExeqSettings(**values)


async def start_exeq(settings: ExeqSettings) -> tuple[Exeq, RunningServer]:
    exeq = compose(settings)
    registration = Registration(
        add_to_server=lambda server: exeq_pb2_grpc.add_ExeqServiceServicer_to_server(exeq.servicer(), server),
        service_names=[SERVICE_NAME],
        on_start=[exeq.start],
        on_stop=[exeq.stop],
    )
    running = await start_server(settings, registration)
    return exeq, running


async def delete_consumers(exeq: Exeq) -> None:
    from services.runtime.bus import Bus

    bus = Bus(exeq.settings.nats_url, "test-exeq-cleanup")
    await bus.connect()
    try:
        for durable in (exeq.settings.router_durable, exeq.settings.children_durable):
            try:
                await bus.js.delete_consumer(exeq.settings.orders_stream, durable)
            except Exception:  # already gone
                continue
    finally:
        await bus.close()


async def eventually(predicate: Any, limit_s: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{what} not met within {limit_s}s")
