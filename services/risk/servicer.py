"""Translates trade.risk.v1 to the risk domain and back. No business rules here."""

from __future__ import annotations

import dataclasses
from typing import Any

import grpc
from trade.risk.v1 import events_pb2, risk_pb2, risk_pb2_grpc

from services.risk.adapters.codec import (
    ORDER_TYPE_FROM_PB,
    SCOPE_FROM_PB,
    SIDE_FROM_PB,
    account_from_pb,
    account_pb,
    audit_pb,
    check_response_pb,
    instrument_from_pb,
    instrument_pb,
    kill_switch_pb,
    parse_decimal,
)
from services.risk.domain.limits import AuditQuery
from services.risk.domain.model import KillSwitchScope, OrderCheck, OrderType
from services.risk.domain.service import RiskService
from services.runtime.errors import DomainError, ErrorKind, Validator
from services.runtime.identity import principal_from_metadata

Context = grpc.aio.ServicerContext[Any, Any]

MANAGER_ROLES = ("risk_manager", "admin")


def _manager(context: Context) -> str:
    """The user id of a risk manager / admin caller (the edge's OPA enforces this too)."""
    principal = principal_from_metadata(context.invocation_metadata())
    if principal is None:
        raise DomainError("UNAUTHENTICATED", "no verified identity on this call", ErrorKind.UNAUTHENTICATED)
    if not principal.has_role(*MANAGER_ROLES):
        raise DomainError("ROLE_NOT_PERMITTED", "risk managers and admins only", ErrorKind.PERMISSION_DENIED)
    return principal.user_id


def order_check_from_pb(request: risk_pb2.CheckOrderRequest) -> OrderCheck:
    v = Validator()
    v.require(bool(request.account_id), "account_id", "required")
    v.require(bool(request.symbol), "symbol", "required")
    v.require(request.HasField("spec"), "spec", "required")
    spec = request.spec
    side = SIDE_FROM_PB.get(spec.side)
    order_type = ORDER_TYPE_FROM_PB.get(spec.order_type)
    v.require(side is not None, "spec.side", "BUY or SELL required")
    v.require(order_type is not None, "spec.order_type", "required")
    quantity = parse_decimal(spec.quantity.value or "0", "spec.quantity")
    v.require(quantity > 0, "spec.quantity", "must be positive")
    limit_price = parse_decimal(spec.limit_price.value, "spec.limit_price") if spec.limit_price.value else None
    stop_price = parse_decimal(spec.stop_price.value, "spec.stop_price") if spec.stop_price.value else None
    if order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        v.require(limit_price is not None, "spec.limit_price", "required for limit orders")
    if order_type in (OrderType.STOP, OrderType.STOP_LIMIT):
        v.require(stop_price is not None, "spec.stop_price", "required for stop orders")
    if order_type is OrderType.MARKET:
        v.require(limit_price is None, "spec.limit_price", "must be empty for market orders")
    for name, price in (("spec.limit_price", limit_price), ("spec.stop_price", stop_price)):
        v.require(price is None or price > 0, name, "must be positive")
    v.raise_if_any()
    assert side is not None and order_type is not None
    return OrderCheck(
        account_id=request.account_id,
        symbol=request.symbol,
        side=side,
        order_type=order_type,
        quantity=quantity,
        limit_price=limit_price,
        stop_price=stop_price,
        client_order_id=request.client_order_id,
        amend_order_id=request.amend_order_id,
        strategy_id=request.strategy_id,
    )


def _scope(value: events_pb2.KillSwitchScope.ValueType) -> KillSwitchScope:
    scope = SCOPE_FROM_PB.get(value)
    if scope is None:
        v = Validator()
        v.require(False, "scope", "GLOBAL or ACCOUNT required")
        v.raise_if_any()
    assert scope is not None
    return scope


class RiskServicer(risk_pb2_grpc.RiskServiceServicer):
    def __init__(self, risk: RiskService) -> None:
        self.risk = risk

    async def CheckOrder(self, request: risk_pb2.CheckOrderRequest, context: Context) -> risk_pb2.CheckOrderResponse:
        result = await self.risk.check(order_check_from_pb(request))
        return check_response_pb(result)

    async def GetLimits(self, request: risk_pb2.GetLimitsRequest, context: Context) -> risk_pb2.GetLimitsResponse:
        v = Validator()
        v.require(bool(request.account_id), "account_id", "required")
        v.raise_if_any()
        account, instruments = self.risk.get_limits(request.account_id, list(request.symbols))
        return risk_pb2.GetLimitsResponse(
            account_limits=account_pb(account), instrument_limits=[instrument_pb(i) for i in instruments]
        )

    async def UpdateLimits(
        self, request: risk_pb2.UpdateLimitsRequest, context: Context
    ) -> risk_pb2.UpdateLimitsResponse:
        actor = _manager(context)
        v = Validator()
        v.require(bool(request.account_id), "account_id", "required")
        v.require(request.HasField("limits"), "limits", "required")
        v.require(request.limits.account_id in ("", request.account_id), "limits.account_id", "must equal account_id")
        v.raise_if_any()
        limits = dataclasses.replace(account_from_pb(request.limits), account_id=request.account_id)
        change = await self.risk.update_account_limits(actor, limits, request.reason, request.expected_version)
        assert change.new_account is not None
        return risk_pb2.UpdateLimitsResponse(limits=account_pb(change.new_account), audit=audit_pb(change))

    async def UpdateInstrumentLimits(
        self, request: risk_pb2.UpdateInstrumentLimitsRequest, context: Context
    ) -> risk_pb2.UpdateInstrumentLimitsResponse:
        actor = _manager(context)
        v = Validator()
        v.require(bool(request.symbol), "symbol", "required")
        v.require(request.HasField("limits"), "limits", "required")
        v.require(request.limits.symbol in ("", request.symbol), "limits.symbol", "must equal symbol")
        v.raise_if_any()
        limits = dataclasses.replace(instrument_from_pb(request.limits), symbol=request.symbol)
        change = await self.risk.update_instrument_limits(actor, limits, request.reason)
        return risk_pb2.UpdateInstrumentLimitsResponse(limits=instrument_pb(limits), audit=audit_pb(change))

    async def ListLimitAudit(
        self, request: risk_pb2.ListLimitAuditRequest, context: Context
    ) -> risk_pb2.ListLimitAuditResponse:
        entries, token = self.risk.list_audit(
            AuditQuery(
                account_id=request.account_id,
                symbol=request.symbol,
                start_time_ns=request.start_time_ns,
                end_time_ns=request.end_time_ns,
                page_size=request.page_size,
                page_token=request.page_token,
            )
        )
        return risk_pb2.ListLimitAuditResponse(entries=[audit_pb(e) for e in entries], next_page_token=token)

    async def EngageKillSwitch(
        self, request: risk_pb2.EngageKillSwitchRequest, context: Context
    ) -> risk_pb2.EngageKillSwitchResponse:
        actor = _manager(context)
        state, event_id = await self.risk.set_kill_switch(
            actor, _scope(request.scope), request.account_id, request.reason, engaged=True
        )
        return risk_pb2.EngageKillSwitchResponse(kill_switch=kill_switch_pb(state), event_id=event_id)

    async def ReleaseKillSwitch(
        self, request: risk_pb2.ReleaseKillSwitchRequest, context: Context
    ) -> risk_pb2.ReleaseKillSwitchResponse:
        actor = _manager(context)
        state, event_id = await self.risk.set_kill_switch(
            actor, _scope(request.scope), request.account_id, request.reason, engaged=False
        )
        return risk_pb2.ReleaseKillSwitchResponse(kill_switch=kill_switch_pb(state), event_id=event_id)

    async def GetKillSwitchStatus(
        self, request: risk_pb2.GetKillSwitchStatusRequest, context: Context
    ) -> risk_pb2.GetKillSwitchStatusResponse:
        switches, halted = self.risk.kill_switch_status(request.account_id)
        return risk_pb2.GetKillSwitchStatusResponse(
            kill_switches=[kill_switch_pb(s) for s in switches], trading_halted=halted
        )
