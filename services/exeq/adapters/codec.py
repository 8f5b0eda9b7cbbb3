"""Protobuf <-> exeq domain. Enum values travel in the domain as their proto names without the prefix
(ORDER_STATUS_FILLED <-> "FILLED", VENUE_UNSPECIFIED <-> "")."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from trade.exeq.v1 import events_pb2 as exeq_events_pb2
from trade.normalizer.v1 import events_pb2 as md_events_pb2
from trade.oms.v1 import events_pb2 as oms_events_pb2
from trade.type.v1 import decimal_pb2, errors_pb2, order_pb2, venue_pb2

from services.exeq.domain.model import (
    Algo,
    AlgoParams,
    ChildOrder,
    ChildUpdate,
    EventType,
    ParentEvent,
    ParentOrder,
    ParentStatus,
)
from services.exeq.domain.router import OrderEventView
from services.runtime.errors import FieldViolation, invalid_argument

_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def enum_name(enum: Any, value: int, prefix: str) -> str:
    """ "FILLED" for ORDER_STATUS_FILLED; "" for *_UNSPECIFIED and unknown values."""
    try:
        name: str = enum.Name(value)
    except ValueError:
        return ""
    short = name.removeprefix(prefix)
    return "" if short == "UNSPECIFIED" else short


def enum_value(enum: Any, name: str, prefix: str) -> Any:
    """The value of prefix+name (typed as the enum's ValueType), 0 (UNSPECIFIED) when empty or unknown."""
    if not name:
        return 0
    try:
        return enum.Value(prefix + name)
    except ValueError:
        return 0


def side_name(value: int) -> str:
    return enum_name(order_pb2.Side, value, "SIDE_")


def venue_name(value: int) -> str:
    return enum_name(venue_pb2.Venue, value, "VENUE_")


def venue_value(name: str) -> Any:
    return enum_value(venue_pb2.Venue, name, "VENUE_")


def status_name(value: int) -> str:
    return enum_name(order_pb2.OrderStatus, value, "ORDER_STATUS_")


def reason_name(value: int) -> str:
    return enum_name(errors_pb2.ErrorReason, value, "ERROR_REASON_")


def reason_value(name: str) -> Any:
    return enum_value(errors_pb2.ErrorReason, name, "ERROR_REASON_")


def fmt(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def dec(value: Decimal) -> decimal_pb2.Decimal:
    return decimal_pb2.Decimal(value=fmt(value))


def parse_decimal(text: str, field: str) -> Decimal:
    if not _DECIMAL.fullmatch(text):
        raise invalid_argument(FieldViolation(field, f"not a decimal: {text!r}"))
    try:
        return Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the pattern already excludes this
        raise invalid_argument(FieldViolation(field, f"not a decimal: {text!r}")) from exc


def optional_decimal(msg: Any, name: str, field: str) -> Decimal | None:
    return parse_decimal(getattr(msg, name).value, field) if msg.HasField(name) else None


def lenient_decimal(msg: Any, name: str) -> Decimal:
    """Our own stored or upstream data: absent or malformed reads as 0."""
    if not msg.HasField(name) or not _DECIMAL.fullmatch(getattr(msg, name).value):
        return Decimal(0)
    return Decimal(getattr(msg, name).value)


def market_trades(data: bytes) -> list[tuple[Decimal, int]]:
    """(quantity, event time) of every public trade of an MD message (a MarketDataBatch), in order.
    Raises DecodeError for a message that is not one."""
    batch = md_events_pb2.MarketDataBatch.FromString(data)
    return [
        (lenient_decimal(event.trade, "quantity"), event.trade.event_time_ns)
        for event in batch.events
        if event.HasField("trade")
    ]


# --- ORDERS (OMS order events) -------------------------------------------------------------------------------


def order_event_view(
    event: oms_events_pb2.OrderEvent, redelivered: bool = False
) -> OrderEventView[oms_events_pb2.OrderEvent]:
    return OrderEventView(
        event_id=event.event_id,
        order_id=event.order_id or event.order.order_id,
        account_id=event.account_id,
        symbol=event.symbol,
        version=event.order_version,
        kind=event.WhichOneof("event") or "",
        venue=venue_name(event.order.venue),
        payload=event,
        redelivered=redelivered,
    )


def child_update(event: oms_events_pb2.OrderEvent) -> ChildUpdate | None:
    order = event.order
    if not order.parent_order_id:
        return None
    fill_id, qty, price = "", Decimal(0), Decimal(0)
    if event.HasField("filled"):
        fill = event.filled.fill
        fill_id, qty, price = fill.fill_id, lenient_decimal(fill, "quantity"), lenient_decimal(fill, "price")
    return ChildUpdate(
        parent_order_id=order.parent_order_id,
        order_id=event.order_id or order.order_id,
        client_order_id=event.client_order_id or order.client_order_id,
        version=event.order_version,
        status=status_name(order.status),
        fill_id=fill_id,
        fill_qty=qty,
        fill_price=price,
        reason=reason_name(order.reason),
        reason_message=order.reason_message,
        event_time_ns=event.event_time_ns,
        snapshot=child_from_order(order.parent_order_id, order),
    )


# --- child orders --------------------------------------------------------------------------------------------


def child_spec(child: ChildOrder, side: str) -> order_pb2.OrderSpec:
    spec = order_pb2.OrderSpec(
        side=enum_value(order_pb2.Side, side, "SIDE_"),
        order_type=enum_value(order_pb2.OrderType, child.order_type, "ORDER_TYPE_"),
        quantity=dec(child.quantity),
        time_in_force=enum_value(order_pb2.TimeInForce, child.time_in_force, "TIME_IN_FORCE_"),
    )
    if child.limit_price is not None:
        spec.limit_price.CopyFrom(dec(child.limit_price))
    return spec


def child_order_pb(parent: ParentOrder, child: ChildOrder) -> order_pb2.Order:
    order = order_pb2.Order(
        order_id=child.order_id,
        client_order_id=child.client_order_id,
        account_id=parent.account_id,
        symbol=parent.symbol,
        spec=child_spec(child, parent.side),
        status=enum_value(order_pb2.OrderStatus, child.status, "ORDER_STATUS_"),
        cum_qty=dec(child.cum_qty),
        leaves_qty=dec(Decimal(0) if child.done else child.quantity - child.cum_qty),
        venue=venue_value(child.venue),
        strategy_id=parent.strategy_id,
        parent_order_id=parent.parent_order_id,
        reason=reason_value(child.reason),
        reason_message=child.reason_message,
        create_time_ns=child.create_time_ns,
        update_time_ns=child.update_time_ns,
        version=child.version,
    )
    if child.avg_price is not None:
        order.avg_price.CopyFrom(dec(child.avg_price))
    return order


def child_from_order(parent_order_id: str, order: order_pb2.Order) -> ChildOrder:
    prefix = parent_order_id + "-"
    tail = order.client_order_id.removeprefix(prefix) if order.client_order_id.startswith(prefix) else ""
    cum = lenient_decimal(order, "cum_qty")
    avg = lenient_decimal(order, "avg_price")
    return ChildOrder(
        n=int(tail) if tail.isdigit() else 0,
        client_order_id=order.client_order_id,
        quantity=lenient_decimal(order.spec, "quantity"),
        order_type=enum_name(order_pb2.OrderType, order.spec.order_type, "ORDER_TYPE_"),
        time_in_force=enum_name(order_pb2.TimeInForce, order.spec.time_in_force, "TIME_IN_FORCE_"),
        limit_price=lenient_decimal(order.spec, "limit_price") if order.spec.HasField("limit_price") else None,
        venue=venue_name(order.venue),
        order_id=order.order_id,
        status=status_name(order.status),
        cum_qty=cum,
        notional=cum * avg,
        version=order.version,
        reason=reason_name(order.reason),
        reason_message=order.reason_message,
        create_time_ns=order.create_time_ns,
        update_time_ns=order.update_time_ns,
    )


# --- parent orders -------------------------------------------------------------------------------------------


def algo_value(algo: Algo) -> Any:
    return enum_value(exeq_events_pb2.ExecutionAlgo, algo.value, "EXECUTION_ALGO_")


def algo_from(value: int) -> Algo | None:
    name = enum_name(exeq_events_pb2.ExecutionAlgo, value, "EXECUTION_ALGO_")
    return Algo(name) if name else None


def status_value(status: ParentStatus) -> Any:
    return enum_value(exeq_events_pb2.ParentOrderStatus, status.value, "PARENT_ORDER_STATUS_")


def status_from(value: int) -> ParentStatus | None:
    name = enum_name(exeq_events_pb2.ParentOrderStatus, value, "PARENT_ORDER_STATUS_")
    return ParentStatus(name) if name else None


def params_pb(params: AlgoParams) -> exeq_events_pb2.AlgoParams:
    msg = exeq_events_pb2.AlgoParams(
        start_time_ns=params.start_time_ns,
        duration_ns=params.duration_ns,
        slice_count=params.slice_count,
        venue_preference=[venue_value(v) for v in params.venue_preference],
        passive=params.passive,
    )
    if params.participation_rate is not None:
        msg.participation_rate.CopyFrom(dec(params.participation_rate))
    if params.max_child_quantity is not None:
        msg.max_child_quantity.CopyFrom(dec(params.max_child_quantity))
    return msg


def params_from(msg: exeq_events_pb2.AlgoParams) -> AlgoParams:
    """Request params (malformed decimals are INVALID_ARGUMENT on params.<field>)."""
    return AlgoParams(
        start_time_ns=msg.start_time_ns,
        duration_ns=msg.duration_ns,
        slice_count=msg.slice_count,
        participation_rate=optional_decimal(msg, "participation_rate", "params.participation_rate"),
        venue_preference=tuple(venue_name(v) for v in msg.venue_preference),
        max_child_quantity=optional_decimal(msg, "max_child_quantity", "params.max_child_quantity"),
        passive=msg.passive,
    )


def parent_pb(parent: ParentOrder) -> exeq_events_pb2.ParentOrder:
    msg = exeq_events_pb2.ParentOrder(
        parent_order_id=parent.parent_order_id,
        client_order_id=parent.client_order_id,
        account_id=parent.account_id,
        symbol=parent.symbol,
        side=enum_value(order_pb2.Side, parent.side, "SIDE_"),
        quantity=dec(parent.quantity),
        algo=algo_value(parent.algo),
        params=params_pb(parent.params),
        strategy_id=parent.strategy_id,
        status=status_value(parent.status),
        cum_qty=dec(parent.cum_qty),
        leaves_qty=dec(parent.leaves_qty),
        child_order_count=parent.child_order_count,
        scheduled_qty=dec(parent.scheduled_qty),
        reason=reason_value(parent.reason),
        reason_message=parent.reason_message,
        create_time_ns=parent.create_time_ns,
        update_time_ns=parent.update_time_ns,
        version=parent.version,
    )
    if parent.limit_price is not None:
        msg.limit_price.CopyFrom(dec(parent.limit_price))
    if parent.avg_price is not None:
        msg.avg_price.CopyFrom(dec(parent.avg_price))
    return msg


def parent_from(msg: exeq_events_pb2.ParentOrder) -> ParentOrder | None:
    """A parent order from its published state; None if it is not one exeq could have written."""
    algo, status = algo_from(msg.algo), status_from(msg.status)
    if algo is None or status is None or not msg.parent_order_id:
        return None
    cum = lenient_decimal(msg, "cum_qty")
    p = msg.params
    return ParentOrder(
        parent_order_id=msg.parent_order_id,
        client_order_id=msg.client_order_id,
        account_id=msg.account_id,
        symbol=msg.symbol,
        side=side_name(msg.side),
        quantity=lenient_decimal(msg, "quantity"),
        limit_price=lenient_decimal(msg, "limit_price") if msg.HasField("limit_price") else None,
        algo=algo,
        params=AlgoParams(
            start_time_ns=p.start_time_ns,
            duration_ns=p.duration_ns,
            slice_count=p.slice_count,
            participation_rate=lenient_decimal(p, "participation_rate") if p.HasField("participation_rate") else None,
            venue_preference=tuple(venue_name(v) for v in p.venue_preference),
            max_child_quantity=lenient_decimal(p, "max_child_quantity") if p.HasField("max_child_quantity") else None,
            passive=p.passive,
        ),
        strategy_id=msg.strategy_id,
        status=status,
        create_time_ns=msg.create_time_ns,
        update_time_ns=msg.update_time_ns,
        cum_qty=cum,
        notional=cum * lenient_decimal(msg, "avg_price"),
        child_order_count=msg.child_order_count,
        scheduled_qty=lenient_decimal(msg, "scheduled_qty"),
        reason=reason_name(msg.reason),
        reason_message=msg.reason_message,
        version=msg.version,
    )


def event_pb(event: ParentEvent) -> exeq_events_pb2.ParentOrderEvent:
    return exeq_events_pb2.ParentOrderEvent(
        event_id=event.event_id,
        event_time_ns=event.event_time_ns,
        parent_order=parent_pb(event.parent),
        child_order_id=event.child_order_id,
        type=enum_value(exeq_events_pb2.ParentOrderEventType, event.type.value, "PARENT_ORDER_EVENT_TYPE_"),
    )


def event_type_from(value: int) -> EventType | None:
    name = enum_name(exeq_events_pb2.ParentOrderEventType, value, "PARENT_ORDER_EVENT_TYPE_")
    return EventType(name) if name else None
