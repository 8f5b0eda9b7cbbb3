"""Protobuf <-> risk domain: limits, audit records, kill-switch events, order specs and the state feeds."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from trade.oms.v1 import events_pb2 as oms_events_pb2
from trade.risk.v1 import events_pb2, limits_pb2, risk_pb2
from trade.type.v1 import decimal_pb2, errors_pb2, fill_pb2, order_pb2

from services.risk.domain.model import (
    AccountLimits,
    CheckResult,
    InstrumentLimits,
    KillSwitch,
    KillSwitchEvent,
    KillSwitchScope,
    LimitChange,
    OrderType,
    PositionLimit,
    Side,
    Violation,
)
from services.risk.domain.state import ExposureBook
from services.runtime.errors import FieldViolation, invalid_argument

SIDE_FROM_PB: dict[order_pb2.Side.ValueType, Side] = {order_pb2.SIDE_BUY: Side.BUY, order_pb2.SIDE_SELL: Side.SELL}
SIDE_TO_PB = {v: k for k, v in SIDE_FROM_PB.items()}
ORDER_TYPE_FROM_PB: dict[int, OrderType] = {
    order_pb2.ORDER_TYPE_MARKET: OrderType.MARKET,
    order_pb2.ORDER_TYPE_LIMIT: OrderType.LIMIT,
    order_pb2.ORDER_TYPE_STOP: OrderType.STOP,
    order_pb2.ORDER_TYPE_STOP_LIMIT: OrderType.STOP_LIMIT,
}
SCOPE_FROM_PB: dict[events_pb2.KillSwitchScope.ValueType, KillSwitchScope] = {
    events_pb2.KILL_SWITCH_SCOPE_GLOBAL: KillSwitchScope.GLOBAL,
    events_pb2.KILL_SWITCH_SCOPE_ACCOUNT: KillSwitchScope.ACCOUNT,
}
SCOPE_TO_PB = {v: k for k, v in SCOPE_FROM_PB.items()}
OPEN_STATUSES = frozenset(
    {
        order_pb2.ORDER_STATUS_PENDING_NEW,
        order_pb2.ORDER_STATUS_NEW,
        order_pb2.ORDER_STATUS_PARTIALLY_FILLED,
        order_pb2.ORDER_STATUS_PENDING_CANCEL,
        order_pb2.ORDER_STATUS_PENDING_REPLACE,
    }
)


# ---------------------------------------------------------------- decimals


def parse_decimal(text: str, field: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise invalid_argument(FieldViolation(field, f"not a decimal number: {text!r}")) from None
    if not value.is_finite():
        raise invalid_argument(FieldViolation(field, "must be finite"))
    return value


def opt_decimal(msg: decimal_pb2.Decimal, present: bool, field: str) -> Decimal | None:
    if not present or not msg.value:
        return None
    value = parse_decimal(msg.value, field)
    if value < 0:
        raise invalid_argument(FieldViolation(field, "must not be negative"))
    return value


def dec_pb(value: Decimal | None) -> decimal_pb2.Decimal | None:
    return None if value is None else decimal_pb2.Decimal(value=format(value, "f"))


def reason_pb(reason: str) -> int:
    try:
        return errors_pb2.ErrorReason.Value(f"ERROR_REASON_{reason}")
    except ValueError:
        return errors_pb2.ERROR_REASON_UNSPECIFIED


# ---------------------------------------------------------------- limits


def instrument_from_pb(msg: limits_pb2.InstrumentLimits, prefix: str = "limits") -> InstrumentLimits:
    return InstrumentLimits(
        symbol=msg.symbol,
        trading_enabled=msg.trading_enabled,
        price_band_bps=msg.price_band_bps,
        max_order_quantity=opt_decimal(
            msg.max_order_quantity, msg.HasField("max_order_quantity"), f"{prefix}.max_order_quantity"
        ),
        max_order_notional=opt_decimal(
            msg.max_order_notional, msg.HasField("max_order_notional"), f"{prefix}.max_order_notional"
        ),
        max_position_quantity=opt_decimal(
            msg.max_position_quantity, msg.HasField("max_position_quantity"), f"{prefix}.max_position_quantity"
        ),
    )


def instrument_pb(limits: InstrumentLimits) -> limits_pb2.InstrumentLimits:
    return limits_pb2.InstrumentLimits(
        symbol=limits.symbol,
        trading_enabled=limits.trading_enabled,
        price_band_bps=limits.price_band_bps,
        max_order_quantity=dec_pb(limits.max_order_quantity),
        max_order_notional=dec_pb(limits.max_order_notional),
        max_position_quantity=dec_pb(limits.max_position_quantity),
    )


def account_from_pb(msg: limits_pb2.AccountLimits, prefix: str = "limits") -> AccountLimits:
    positions = []
    for i, p in enumerate(msg.position_limits):
        field = f"{prefix}.position_limits[{i}]"
        if not p.symbol:
            raise invalid_argument(FieldViolation(f"{field}.symbol", "required"))
        qty = opt_decimal(
            p.max_position_quantity, p.HasField("max_position_quantity"), f"{field}.max_position_quantity"
        )
        if qty is None:
            raise invalid_argument(FieldViolation(f"{field}.max_position_quantity", "required"))
        positions.append(PositionLimit(p.symbol, qty))
    return AccountLimits(
        account_id=msg.account_id,
        max_order_notional=opt_decimal(
            msg.max_order_notional, msg.HasField("max_order_notional"), f"{prefix}.max_order_notional"
        ),
        max_open_orders=msg.max_open_orders,
        max_orders_per_second=msg.max_orders_per_second,
        daily_loss_limit=opt_decimal(
            msg.daily_loss_limit, msg.HasField("daily_loss_limit"), f"{prefix}.daily_loss_limit"
        ),
        position_limits=tuple(positions),
        is_default=msg.is_default,
        version=msg.version,
        update_time_ns=msg.update_time_ns,
        updated_by=msg.updated_by,
    )


def account_pb(limits: AccountLimits) -> limits_pb2.AccountLimits:
    return limits_pb2.AccountLimits(
        account_id=limits.account_id,
        max_order_notional=dec_pb(limits.max_order_notional),
        max_open_orders=limits.max_open_orders,
        max_orders_per_second=limits.max_orders_per_second,
        daily_loss_limit=dec_pb(limits.daily_loss_limit),
        position_limits=[
            limits_pb2.PositionLimit(symbol=p.symbol, max_position_quantity=dec_pb(p.max_position_quantity))
            for p in limits.position_limits
        ],
        is_default=limits.is_default,
        version=limits.version,
        update_time_ns=limits.update_time_ns,
        updated_by=limits.updated_by,
    )


def _value_pb(account: AccountLimits | None, instrument: InstrumentLimits | None) -> limits_pb2.LimitsValue | None:
    if account is not None:
        return limits_pb2.LimitsValue(account=account_pb(account))
    if instrument is not None:
        return limits_pb2.LimitsValue(instrument=instrument_pb(instrument))
    return None


def audit_pb(change: LimitChange) -> events_pb2.LimitChangeAudit:
    return events_pb2.LimitChangeAudit(
        audit_id=change.audit_id,
        actor=change.actor,
        change_time_ns=change.change_time_ns,
        account_id=change.account_id,
        symbol=change.symbol,
        old_value=_value_pb(change.old_account, change.old_instrument),
        new_value=_value_pb(change.new_account, change.new_instrument),
        reason=change.reason,
    )


def audit_from_pb(msg: events_pb2.LimitChangeAudit) -> LimitChange:
    def side(value: limits_pb2.LimitsValue) -> tuple[AccountLimits | None, InstrumentLimits | None]:
        kind = value.WhichOneof("kind")
        if kind == "account":
            return account_from_pb(value.account), None
        if kind == "instrument":
            return None, instrument_from_pb(value.instrument)
        return None, None

    old_account, old_instrument = side(msg.old_value)
    new_account, new_instrument = side(msg.new_value)
    return LimitChange(
        audit_id=msg.audit_id,
        actor=msg.actor,
        change_time_ns=msg.change_time_ns,
        reason=msg.reason,
        account_id=msg.account_id,
        symbol=msg.symbol,
        old_account=old_account,
        new_account=new_account,
        old_instrument=old_instrument,
        new_instrument=new_instrument,
    )


# ---------------------------------------------------------------- kill switch


def kill_event_pb(event: KillSwitchEvent) -> events_pb2.KillSwitchEvent:
    return events_pb2.KillSwitchEvent(
        event_id=event.event_id,
        action=events_pb2.KILL_SWITCH_ACTION_ENGAGED if event.engaged else events_pb2.KILL_SWITCH_ACTION_RELEASED,
        scope=SCOPE_TO_PB[event.scope],
        account_id=event.account_id,
        actor=event.actor,
        reason=event.reason,
        event_time_ns=event.event_time_ns,
    )


def kill_event_from_pb(msg: events_pb2.KillSwitchEvent) -> KillSwitchEvent | None:
    scope = SCOPE_FROM_PB.get(msg.scope)
    if scope is None or msg.action == events_pb2.KILL_SWITCH_ACTION_UNSPECIFIED:
        return None
    return KillSwitchEvent(
        event_id=msg.event_id,
        engaged=msg.action == events_pb2.KILL_SWITCH_ACTION_ENGAGED,
        scope=scope,
        account_id=msg.account_id,
        actor=msg.actor,
        reason=msg.reason,
        event_time_ns=msg.event_time_ns,
    )


def kill_switch_pb(state: KillSwitch) -> risk_pb2.KillSwitch:
    return risk_pb2.KillSwitch(
        scope=SCOPE_TO_PB[state.scope],
        account_id=state.account_id,
        engaged=state.engaged,
        changed_by=state.changed_by,
        reason=state.reason,
        change_time_ns=state.change_time_ns,
    )


# ---------------------------------------------------------------- check


def violation_pb(v: Violation) -> risk_pb2.RiskViolation:
    return risk_pb2.RiskViolation(
        reason=reason_pb(v.reason),  # type: ignore[arg-type]
        message=v.message,
        limit=dec_pb(v.limit),
        observed=dec_pb(v.observed),
    )


def check_response_pb(result: CheckResult) -> risk_pb2.CheckOrderResponse:
    return risk_pb2.CheckOrderResponse(
        approved=result.approved,
        violations=[violation_pb(v) for v in result.violations],
        check_id=result.check_id,
        check_time_ns=result.check_time_ns,
        reference_price=dec_pb(result.reference_price),
    )


# ---------------------------------------------------------------- state feeds


def apply_fill(book: ExposureBook, data: bytes) -> bool:
    fill = fill_pb2.Fill.FromString(data)
    side = SIDE_FROM_PB.get(fill.side)
    if side is None or not fill.fill_id or not fill.quantity.value:
        return False
    return book.apply_fill(fill.fill_id, fill.account_id, fill.symbol, side, Decimal(fill.quantity.value))


def apply_order_event(book: ExposureBook, data: bytes) -> bool:
    event = oms_events_pb2.OrderEvent.FromString(data)
    order = event.order
    side = SIDE_FROM_PB.get(order.spec.side)
    if side is None or not order.order_id:
        return False
    if order.HasField("leaves_qty") and order.leaves_qty.value:
        leaves = Decimal(order.leaves_qty.value)
    else:
        quantity = Decimal(order.spec.quantity.value or "0")
        leaves = quantity - Decimal(order.cum_qty.value or "0")
    version = order.version or event.order_version
    filled = Decimal(order.cum_qty.value or "0")
    return book.apply_order(
        order.order_id, order.account_id, order.symbol, side, leaves, order.status in OPEN_STATUSES, version, filled
    )
