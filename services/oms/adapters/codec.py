"""Protobuf <-> OMS domain: orders, specs, fills, order events, execution reports, kill-switch events."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from sys import intern
from typing import Any

from trade.live_gateway.v1 import events_pb2 as exec_pb2
from trade.oms.v1 import events_pb2
from trade.risk.v1 import events_pb2 as risk_events_pb2
from trade.type.v1 import decimal_pb2, errors_pb2, fill_pb2, order_pb2, venue_pb2

from services.oms.domain.model import (
    EventDetail,
    EventKind,
    ExecType,
    Fill,
    KillSwitch,
    Order,
    OrderChange,
    OrderSpec,
    OrderType,
    Side,
    Status,
    TimeInForce,
    VenueReport,
)
from services.oms.domain.validation import format_decimal

REPORT_ID_HEADER = "Trade-Report-Id"


# The OMS holds every order it ever saw: decoded names and Decimals share one instance per value.
_REASON_NAMES: dict[int, str] = {v: n.removeprefix("ERROR_REASON_") for n, v in errors_pb2.ErrorReason.items() if v}
_VENUE_NAMES: dict[int, str] = {v: n.removeprefix("VENUE_") for n, v in venue_pb2.Venue.items() if v}
_DECIMALS: dict[str, Decimal] = {}
_DECIMALS_MAX = 10_000
ZERO = Decimal(0)


def reason_name(value: int) -> str:
    """ErrorReason enum -> the ErrorInfo reason string ("" for UNSPECIFIED or unknown)."""
    return _REASON_NAMES.get(value, "")


def reason_value(name: str) -> errors_pb2.ErrorReason.ValueType:
    if not name:
        return errors_pb2.ERROR_REASON_UNSPECIFIED
    try:
        return errors_pb2.ErrorReason.Value(f"ERROR_REASON_{name}")
    except ValueError:
        return errors_pb2.ERROR_REASON_UNSPECIFIED


def venue_name(value: int) -> str:
    return _VENUE_NAMES.get(value, "")


def venue_value(name: str) -> venue_pb2.Venue.ValueType:
    try:
        return venue_pb2.Venue.Value(f"VENUE_{name}") if name else venue_pb2.VENUE_UNSPECIFIED
    except ValueError:
        return venue_pb2.VENUE_UNSPECIFIED


SIDE_TO_PB = {Side.BUY: order_pb2.SIDE_BUY, Side.SELL: order_pb2.SIDE_SELL}
SIDE_FROM_PB = {v: k for k, v in SIDE_TO_PB.items()}
TYPE_TO_PB = {
    OrderType.MARKET: order_pb2.ORDER_TYPE_MARKET,
    OrderType.LIMIT: order_pb2.ORDER_TYPE_LIMIT,
    OrderType.STOP: order_pb2.ORDER_TYPE_STOP,
    OrderType.STOP_LIMIT: order_pb2.ORDER_TYPE_STOP_LIMIT,
}
TYPE_FROM_PB = {v: k for k, v in TYPE_TO_PB.items()}
TIF_TO_PB = {
    TimeInForce.GTC: order_pb2.TIME_IN_FORCE_GTC,
    TimeInForce.IOC: order_pb2.TIME_IN_FORCE_IOC,
    TimeInForce.FOK: order_pb2.TIME_IN_FORCE_FOK,
    TimeInForce.GTD: order_pb2.TIME_IN_FORCE_GTD,
}
TIF_FROM_PB = {v: k for k, v in TIF_TO_PB.items()}
STATUS_TO_PB = {s: order_pb2.OrderStatus.Value(f"ORDER_STATUS_{s.value}") for s in Status}
STATUS_FROM_PB = {v: k for k, v in STATUS_TO_PB.items()}
LIQUIDITY = ("UNSPECIFIED", "MAKER", "TAKER")
EXEC_FROM_PB = {exec_pb2.ExecType.Value(f"EXEC_TYPE_{e.value}"): e for e in ExecType}


def dec(value: Decimal | None) -> decimal_pb2.Decimal | None:
    return None if value is None else decimal_pb2.Decimal(value=format_decimal(value))


def decimal_of(text: str) -> Decimal:
    """Raises decimal.InvalidOperation for a malformed text."""
    value = _DECIMALS.get(text)
    if value is None:
        value = Decimal(text)
        if len(_DECIMALS) < _DECIMALS_MAX:  # the common values come early; unique ones (averages) need no sharing
            _DECIMALS[text] = value
    return value


def undec(msg: decimal_pb2.Decimal, present: bool = True) -> Decimal | None:
    if not present or not msg.value:
        return None
    return decimal_of(msg.value)


def spec_to_pb(spec: OrderSpec) -> order_pb2.OrderSpec:
    return order_pb2.OrderSpec(
        side=SIDE_TO_PB[spec.side],
        order_type=TYPE_TO_PB[spec.order_type],
        quantity=dec(spec.quantity),
        limit_price=dec(spec.limit_price),
        stop_price=dec(spec.stop_price),
        time_in_force=TIF_TO_PB[spec.time_in_force],
        expire_time_ns=spec.expire_time_ns,
        post_only=spec.post_only,
        reduce_only=spec.reduce_only,
    )


def spec_from_pb(pb: order_pb2.OrderSpec) -> OrderSpec:
    """For specs the OMS wrote itself (already validated)."""
    return OrderSpec(
        side=SIDE_FROM_PB[pb.side],
        order_type=TYPE_FROM_PB[pb.order_type],
        quantity=undec(pb.quantity) or ZERO,
        limit_price=undec(pb.limit_price, pb.HasField("limit_price")),
        stop_price=undec(pb.stop_price, pb.HasField("stop_price")),
        time_in_force=TIF_FROM_PB.get(pb.time_in_force, TimeInForce.GTC),
        expire_time_ns=pb.expire_time_ns,
        post_only=pb.post_only,
        reduce_only=pb.reduce_only,
    )


def order_to_pb(order: Order) -> order_pb2.Order:
    return order_pb2.Order(
        order_id=order.order_id,
        client_order_id=order.client_order_id,
        account_id=order.account_id,
        symbol=order.symbol,
        spec=spec_to_pb(order.spec),
        status=STATUS_TO_PB[order.status],
        cum_qty=dec(order.cum_qty),
        leaves_qty=dec(order.leaves_qty),
        avg_price=dec(order.avg_price),
        cum_fee=dec(order.cum_fee),
        fee_currency=order.fee_currency,
        venue=venue_value(order.venue),
        venue_order_id=order.venue_order_id,
        strategy_id=order.strategy_id,
        parent_order_id=order.parent_order_id,
        reason=reason_value(order.reason),
        reason_message=order.reason_message,
        create_time_ns=order.create_time_ns,
        update_time_ns=order.update_time_ns,
        version=order.version,
    )


def order_from_pb(pb: order_pb2.Order, **derived: Any) -> Order:
    """`derived`: the Order fields that are not on the wire (e.g. from a snapshot)."""
    return Order(
        order_id=pb.order_id,
        client_order_id=pb.client_order_id,
        account_id=intern(pb.account_id),
        symbol=intern(pb.symbol),
        spec=spec_from_pb(pb.spec),
        status=STATUS_FROM_PB[pb.status],
        venue=venue_name(pb.venue),
        create_time_ns=pb.create_time_ns,
        update_time_ns=pb.update_time_ns,
        version=pb.version,
        cum_qty=undec(pb.cum_qty) or ZERO,
        leaves_qty=undec(pb.leaves_qty) or ZERO,
        avg_price=undec(pb.avg_price, pb.HasField("avg_price")),
        cum_fee=undec(pb.cum_fee) or ZERO,
        fee_currency=intern(pb.fee_currency),
        venue_order_id=pb.venue_order_id,
        strategy_id=intern(pb.strategy_id),
        parent_order_id=pb.parent_order_id,
        reason=reason_name(pb.reason),
        reason_message=pb.reason_message,
        **derived,
    )


def fill_to_pb(fill: Fill) -> fill_pb2.Fill:
    return fill_pb2.Fill(
        fill_id=fill.fill_id,
        order_id=fill.order_id,
        client_order_id=fill.client_order_id,
        account_id=fill.account_id,
        symbol=fill.symbol,
        side=SIDE_TO_PB[fill.side] if fill.side else order_pb2.SIDE_UNSPECIFIED,
        price=dec(fill.price),
        quantity=dec(fill.quantity),
        fee=dec(fill.fee),
        fee_currency=fill.fee_currency,
        liquidity=fill_pb2.Liquidity.Value(f"LIQUIDITY_{fill.liquidity}"),
        venue=venue_value(fill.venue),
        venue_order_id=fill.venue_order_id,
        venue_trade_id=fill.venue_trade_id,
        strategy_id=fill.strategy_id,
        parent_order_id=fill.parent_order_id,
        event_time_ns=fill.event_time_ns,
        receive_time_ns=fill.receive_time_ns,
    )


def fill_from_pb(pb: fill_pb2.Fill) -> Fill:
    """Raises ValueError (decimal.InvalidOperation) for a malformed price or quantity."""
    liquidity = LIQUIDITY[pb.liquidity] if 0 <= pb.liquidity < len(LIQUIDITY) else "UNSPECIFIED"
    return Fill(
        fill_id=pb.fill_id,
        price=decimal_of(pb.price.value),
        quantity=decimal_of(pb.quantity.value),
        fee=decimal_of(pb.fee.value) if pb.fee.value else ZERO,
        fee_currency=intern(pb.fee_currency),
        liquidity=liquidity,
        venue=venue_name(pb.venue),
        venue_order_id=pb.venue_order_id,
        venue_trade_id=pb.venue_trade_id,
        event_time_ns=pb.event_time_ns,
        receive_time_ns=pb.receive_time_ns,
        order_id=pb.order_id,
        client_order_id=pb.client_order_id,
        account_id=intern(pb.account_id),
        symbol=intern(pb.symbol),
        side=SIDE_FROM_PB.get(pb.side),
        strategy_id=intern(pb.strategy_id),
        parent_order_id=pb.parent_order_id,
    )


def event_to_pb(change: OrderChange) -> events_pb2.OrderEvent:
    o, d = change.order, change.detail
    event = events_pb2.OrderEvent(
        event_id=change.event_id,
        account_id=o.account_id,
        symbol=o.symbol,
        order_id=o.order_id,
        client_order_id=o.client_order_id,
        order_version=o.version,
        event_time_ns=change.event_time_ns,
        receive_time_ns=change.receive_time_ns,
        order=order_to_pb(o),
    )
    kind = change.kind
    if kind == EventKind.ACCEPTED:
        event.accepted.risk_check_id = d.risk_check_id
    elif kind == EventKind.REJECTED:
        event.rejected.CopyFrom(
            events_pb2.OrderRejected(reason=reason_value(d.reason), message=d.message, risk_check_id=d.risk_check_id)
        )
    elif kind == EventKind.ACKNOWLEDGED:
        event.acknowledged.venue_order_id = d.venue_order_id
    elif kind == EventKind.CANCEL_REQUESTED:
        event.cancel_requested.CopyFrom(events_pb2.OrderCancelRequested(requested_by=d.requested_by, reason=d.message))
    elif kind == EventKind.CANCELED:
        event.canceled.CopyFrom(
            events_pb2.OrderCanceled(canceled_quantity=dec(d.quantity), reason=reason_value(d.reason))
        )
    elif kind == EventKind.CANCEL_REJECTED:
        event.cancel_rejected.CopyFrom(events_pb2.OrderCancelRejected(reason=reason_value(d.reason), message=d.message))
    elif kind == EventKind.REPLACE_REQUESTED:
        assert d.new_spec is not None
        event.replace_requested.CopyFrom(
            events_pb2.OrderReplaceRequested(new_spec=spec_to_pb(d.new_spec), requested_by=d.requested_by)
        )
    elif kind == EventKind.REPLACED:
        assert d.previous_spec is not None
        event.replaced.CopyFrom(
            events_pb2.OrderReplaced(previous_spec=spec_to_pb(d.previous_spec), venue_order_id=d.venue_order_id)
        )
    elif kind == EventKind.REPLACE_REJECTED:
        event.replace_rejected.CopyFrom(
            events_pb2.OrderReplaceRejected(reason=reason_value(d.reason), message=d.message)
        )
    elif kind == EventKind.EXPIRED:
        event.expired.CopyFrom(events_pb2.OrderExpired(expired_quantity=dec(d.quantity)))
    elif kind == EventKind.FILLED:
        assert d.fill is not None
        event.filled.fill.CopyFrom(fill_to_pb(d.fill))
    return event


def event_from_pb(event: events_pb2.OrderEvent, report_id: str = "") -> OrderChange:
    kind = EventKind(event.WhichOneof("event"))
    which = getattr(event, kind.value)
    detail = EventDetail()
    if kind == EventKind.ACCEPTED:
        detail = EventDetail(risk_check_id=which.risk_check_id)
    elif kind in (EventKind.REJECTED, EventKind.CANCEL_REJECTED, EventKind.REPLACE_REJECTED):
        detail = EventDetail(
            reason=reason_name(which.reason), message=which.message, risk_check_id=getattr(which, "risk_check_id", "")
        )
    elif kind == EventKind.ACKNOWLEDGED:
        detail = EventDetail(venue_order_id=which.venue_order_id)
    elif kind == EventKind.CANCEL_REQUESTED:
        detail = EventDetail(requested_by=which.requested_by, message=which.reason)
    elif kind == EventKind.CANCELED:
        detail = EventDetail(quantity=undec(which.canceled_quantity), reason=reason_name(which.reason))
    elif kind == EventKind.REPLACE_REQUESTED:
        detail = EventDetail(new_spec=spec_from_pb(which.new_spec), requested_by=which.requested_by)
    elif kind == EventKind.REPLACED:
        detail = EventDetail(previous_spec=spec_from_pb(which.previous_spec), venue_order_id=which.venue_order_id)
    elif kind == EventKind.EXPIRED:
        detail = EventDetail(quantity=undec(which.expired_quantity))
    elif kind == EventKind.FILLED:
        detail = EventDetail(fill=fill_from_pb(which.fill))
    return OrderChange(order_from_pb(event.order), kind, detail, event.event_time_ns, event.receive_time_ns, report_id)


def report_from_pb(pb: exec_pb2.ExecutionReport) -> VenueReport | None:
    """None for an exec type the OMS does not know."""
    exec_type = EXEC_FROM_PB.get(pb.exec_type)
    if exec_type is None:
        return None
    fill = None
    if pb.HasField("fill"):
        fill = fill_from_pb(pb.fill)
        if not fill.venue_order_id:
            fill = replace(fill, venue_order_id=pb.venue_order_id)
    return VenueReport(
        report_id=pb.report_id,
        order_id=pb.order_id,
        exec_type=exec_type,
        venue_order_id=pb.venue_order_id,
        fill=fill,
        reason=reason_name(pb.reason),
        text=pb.text,
        event_time_ns=pb.event_time_ns,
        account_id=pb.account_id,
    )


def kill_switch_from_pb(pb: risk_events_pb2.KillSwitchEvent) -> KillSwitch | None:
    """The engaged switch, or None for a release (or an invalid scope)."""
    if pb.action != risk_events_pb2.KILL_SWITCH_ACTION_ENGAGED:
        return None
    if pb.scope == risk_events_pb2.KILL_SWITCH_SCOPE_GLOBAL:
        account = ""
    elif pb.scope == risk_events_pb2.KILL_SWITCH_SCOPE_ACCOUNT and pb.account_id:
        account = pb.account_id
    else:
        return None
    return KillSwitch(pb.event_id, account, pb.reason, pb.actor, pb.event_time_ns)
