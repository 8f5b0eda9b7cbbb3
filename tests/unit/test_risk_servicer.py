"""The risk servicer's translation: request validation, the caller's identity on admin RPCs, responses."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from trade.risk.v1 import events_pb2, limits_pb2, risk_pb2
from trade.type.v1 import decimal_pb2, errors_pb2, order_pb2

from services.risk.servicer import RiskServicer, order_check_from_pb
from services.runtime.errors import DomainError, ErrorKind
from services.runtime.identity import JWT_PAYLOAD_HEADER
from tests.unit.risk_support import World


class FakeContext:
    def __init__(self, roles: list[str] | None = None, user: str = "u-rm") -> None:
        self._md: tuple[tuple[str, str], ...] = ()
        if roles is not None:
            payload = json.dumps({"sub": user, "roles": roles, "accounts": []}).encode()
            self._md = ((JWT_PAYLOAD_HEADER, base64.urlsafe_b64encode(payload).decode().rstrip("=")),)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._md


def _ctx(roles: list[str] | None = None) -> Any:
    return FakeContext(roles)


def _dec(text: str) -> decimal_pb2.Decimal:
    return decimal_pb2.Decimal(value=text)


def _request(**spec: Any) -> risk_pb2.CheckOrderRequest:
    fields: dict[str, Any] = {
        "side": order_pb2.SIDE_BUY,
        "order_type": order_pb2.ORDER_TYPE_LIMIT,
        "quantity": _dec("1"),
    }
    fields.update(spec)
    return risk_pb2.CheckOrderRequest(account_id="acct-1", symbol="BTCUSDT", spec=order_pb2.OrderSpec(**fields))


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"limit_price": _dec("1"), "quantity": _dec("0")}, "spec.quantity"),
        ({"limit_price": _dec("1"), "quantity": _dec("abc")}, "spec.quantity"),
        ({}, "spec.limit_price"),
        ({"limit_price": _dec("-1")}, "spec.limit_price"),
        ({"order_type": order_pb2.ORDER_TYPE_STOP}, "spec.stop_price"),
        ({"side": order_pb2.SIDE_UNSPECIFIED, "limit_price": _dec("1")}, "spec.side"),
        ({"order_type": order_pb2.ORDER_TYPE_MARKET, "limit_price": _dec("1")}, "spec.limit_price"),
    ],
)
def test_malformed_orders_are_invalid_argument_naming_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(DomainError) as err:
        order_check_from_pb(_request(**spec))
    assert err.value.kind is ErrorKind.INVALID_ARGUMENT
    assert field in [v.field for v in err.value.violations]


async def test_check_order_response_carries_reason_enums_limit_and_reference_price() -> None:
    servicer = RiskServicer(World().service)
    response = await servicer.CheckOrder(_request(limit_price=_dec("50000"), quantity=_dec("11")), _ctx())
    assert not response.approved and response.check_id
    assert [v.reason for v in response.violations] == [
        errors_pb2.ERROR_REASON_RISK_MAX_ORDER_QTY,
        errors_pb2.ERROR_REASON_RISK_MAX_NOTIONAL,
    ]
    assert response.violations[0].limit.value == "10" and response.violations[0].observed.value == "11"
    assert response.reference_price.value == "50000"


async def test_unknown_symbol_maps_to_the_order_validation_reason() -> None:
    servicer = RiskServicer(World().service)
    request = _request(limit_price=_dec("1"))
    request.symbol = "NOPE"
    response = await servicer.CheckOrder(request, _ctx())
    assert [v.reason for v in response.violations] == [errors_pb2.ERROR_REASON_UNKNOWN_SYMBOL]


async def test_admin_rpcs_record_the_caller_and_require_a_manager_role() -> None:
    world = World()
    servicer = RiskServicer(world.service)
    request = risk_pb2.EngageKillSwitchRequest(
        scope=events_pb2.KILL_SWITCH_SCOPE_ACCOUNT, account_id="acct-1", reason="stop"
    )
    with pytest.raises(DomainError) as unauth:
        await servicer.EngageKillSwitch(request, _ctx())
    assert unauth.value.kind is ErrorKind.UNAUTHENTICATED
    with pytest.raises(DomainError) as denied:
        await servicer.EngageKillSwitch(request, _ctx(["trader"]))
    assert denied.value.kind is ErrorKind.PERMISSION_DENIED
    response = await servicer.EngageKillSwitch(request, _ctx(["risk_manager"]))
    assert response.kill_switch.engaged and response.kill_switch.changed_by == "u-rm"
    assert response.event_id == world.events.kill_switches[0].event_id
    status = await servicer.GetKillSwitchStatus(risk_pb2.GetKillSwitchStatusRequest(account_id="acct-1"), _ctx())
    assert status.trading_halted and [s.scope for s in status.kill_switches] == [
        events_pb2.KILL_SWITCH_SCOPE_GLOBAL,
        events_pb2.KILL_SWITCH_SCOPE_ACCOUNT,
    ]


async def test_kill_switch_scope_is_required() -> None:
    servicer = RiskServicer(World().service)
    with pytest.raises(DomainError) as err:
        await servicer.EngageKillSwitch(risk_pb2.EngageKillSwitchRequest(reason="x"), _ctx(["admin"]))
    assert [v.field for v in err.value.violations] == ["scope"]


async def test_update_limits_round_trips_and_is_audited() -> None:
    world = World()
    servicer = RiskServicer(world.service)
    limits = limits_pb2.AccountLimits(
        account_id="acct-1",
        max_order_notional=_dec("1000"),
        max_open_orders=4,
        position_limits=[limits_pb2.PositionLimit(symbol="BTCUSDT", max_position_quantity=_dec("2"))],
    )
    response = await servicer.UpdateLimits(
        risk_pb2.UpdateLimitsRequest(account_id="acct-1", limits=limits, reason="tighten"), _ctx(["risk_manager"])
    )
    assert response.limits.version == 1 and response.limits.updated_by == "u-rm"
    assert response.audit.actor == "u-rm" and not response.audit.HasField("old_value")
    assert response.audit.new_value.account.max_order_notional.value == "1000"
    got = await servicer.GetLimits(risk_pb2.GetLimitsRequest(account_id="acct-1", symbols=["BTCUSDT"]), _ctx())
    assert got.account_limits.max_open_orders == 4 and not got.account_limits.is_default
    assert got.account_limits.position_limits[0].max_position_quantity.value == "2"
    assert [i.symbol for i in got.instrument_limits] == ["BTCUSDT"]
    audit = await servicer.ListLimitAudit(risk_pb2.ListLimitAuditRequest(account_id="acct-1"), _ctx())
    assert [e.audit_id for e in audit.entries] == [response.audit.audit_id]


async def test_update_limits_rejects_a_mismatched_account() -> None:
    servicer = RiskServicer(World().service)
    request = risk_pb2.UpdateLimitsRequest(
        account_id="acct-1", limits=limits_pb2.AccountLimits(account_id="acct-2"), reason="x"
    )
    with pytest.raises(DomainError) as err:
        await servicer.UpdateLimits(request, _ctx(["admin"]))
    assert [v.field for v in err.value.violations] == ["limits.account_id"]
