"""Translates trade.live_gateway.v1 protobuf to gateway commands and back. No business rules here."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
from trade.live_gateway.v1 import live_gateway_pb2, live_gateway_pb2_grpc
from trade.type.v1 import stream_pb2

from services.live_gateway.adapters.codec import (
    connection_state_pb,
    dec_pb,
    order_type_pb,
    report_pb,
    spec_from_pb,
    status_pb,
    tif_pb,
    venue_from_pb,
    venue_pb,
)
from services.live_gateway.domain.gateway import Gateway
from services.live_gateway.domain.model import AmendOrder, CancelOrder, PlaceOrder, Venue
from services.runtime.errors import DomainError, ErrorKind, FieldViolation, invalid_argument

Context = grpc.aio.ServicerContext[Any, Any]


def _venue(value: int, field: str = "venue") -> Venue:
    try:
        venue = venue_from_pb(value)
    except ValueError:
        venue = None
    if venue is None:
        raise invalid_argument(FieldViolation(field, "a known venue is required (PRISM, PAPER, BINANCE_SPOT)"))
    return venue


class LiveGatewayServicer(live_gateway_pb2_grpc.LiveGatewayServiceServicer):
    def __init__(self, gateway: Gateway, heartbeat_s: float = 5.0) -> None:
        self.gateway = gateway
        self.heartbeat_s = heartbeat_s

    async def PlaceOrder(
        self, request: live_gateway_pb2.PlaceOrderRequest, context: Context
    ) -> live_gateway_pb2.PlaceOrderResponse:
        if not request.HasField("spec"):
            raise invalid_argument(FieldViolation("spec", "required"))
        order = PlaceOrder(
            account_id=request.account_id,
            symbol=request.symbol,
            venue=_venue(request.venue),
            order_id=request.order_id,
            client_order_id=request.client_order_id,
            spec=spec_from_pb(request.spec, "spec"),
        )
        result = await self.gateway.place(order)
        return live_gateway_pb2.PlaceOrderResponse(
            venue_order_id=result.venue_order_id, status=status_pb(result.status), replayed=result.replayed
        )

    async def CancelOrder(
        self, request: live_gateway_pb2.CancelOrderRequest, context: Context
    ) -> live_gateway_pb2.CancelOrderResponse:
        result = await self.gateway.cancel(
            CancelOrder(
                account_id=request.account_id,
                symbol=request.symbol,
                venue=_venue(request.venue),
                order_id=request.order_id,
                venue_order_id=request.venue_order_id,
            )
        )
        return live_gateway_pb2.CancelOrderResponse(accepted=result.accepted)

    async def AmendOrder(
        self, request: live_gateway_pb2.AmendOrderRequest, context: Context
    ) -> live_gateway_pb2.AmendOrderResponse:
        if not request.HasField("new_spec"):
            raise invalid_argument(FieldViolation("new_spec", "required"))
        result = await self.gateway.amend(
            AmendOrder(
                account_id=request.account_id,
                symbol=request.symbol,
                venue=_venue(request.venue),
                order_id=request.order_id,
                venue_order_id=request.venue_order_id,
                new_spec=spec_from_pb(request.new_spec, "new_spec"),
                order_version=request.order_version,
            )
        )
        return live_gateway_pb2.AmendOrderResponse(accepted=result.accepted, venue_order_id=result.venue_order_id)

    async def ListVenues(
        self, request: live_gateway_pb2.ListVenuesRequest, context: Context
    ) -> live_gateway_pb2.ListVenuesResponse:
        return live_gateway_pb2.ListVenuesResponse(
            venues=[
                live_gateway_pb2.VenueInfo(
                    venue=venue_pb(info.venue),
                    display_name=info.capabilities.display_name,
                    simulated=info.capabilities.simulated,
                    order_types=[order_type_pb(t) for t in info.capabilities.order_types],
                    time_in_force=[tif_pb(t) for t in info.capabilities.time_in_force],
                    native_amend=info.capabilities.native_amend,
                    state=connection_state_pb(info.state),
                )
                for info in self.gateway.list_venues()
            ]
        )

    async def GetVenueStatus(
        self, request: live_gateway_pb2.GetVenueStatusRequest, context: Context
    ) -> live_gateway_pb2.GetVenueStatusResponse:
        s = self.gateway.venue_status(_venue(request.venue))
        c = s.connection
        return live_gateway_pb2.GetVenueStatusResponse(
            venue=venue_pb(s.venue),
            state=connection_state_pb(c.state),
            message=c.message,
            state_change_time_ns=c.state_change_time_ns,
            last_heartbeat_time_ns=c.last_heartbeat_time_ns,
            round_trip_p50_ns=s.round_trip_p50_ns,
            open_order_count=s.open_order_count,
            rate_limit_remaining=c.rate_limit_remaining,
            orders_placed=s.orders_placed,
            orders_rejected=s.orders_rejected,
            traded_notional_today=dec_pb(s.traded_notional_today),
        )

    async def StreamExecutionReports(
        self, request: live_gateway_pb2.StreamExecutionReportsRequest, context: Context
    ) -> AsyncIterator[live_gateway_pb2.StreamExecutionReportsResponse]:
        venues = frozenset(_venue(v, f"venues[{i}]") for i, v in enumerate(request.venues))
        sub = self.gateway.subscribe(request.account_id, venues)
        try:
            while True:
                try:
                    report = await asyncio.wait_for(sub.queue.get(), self.heartbeat_s)
                except TimeoutError:
                    yield live_gateway_pb2.StreamExecutionReportsResponse(
                        heartbeat=stream_pb2.StreamHeartbeat(server_time_ns=time.time_ns())
                    )
                    continue
                if sub.overflowed:
                    raise DomainError(
                        "SLOW_CONSUMER",
                        "the client fell too far behind the report stream; re-subscribe and read EXEC for the gap",
                        ErrorKind.RESOURCE_EXHAUSTED,
                    )
                yield live_gateway_pb2.StreamExecutionReportsResponse(report=report_pb(report))
        finally:
            self.gateway.unsubscribe(sub)
