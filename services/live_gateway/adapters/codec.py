"""protobuf <-> domain: enums by value name, Decimal strings, specs, reports and fills."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from trade.live_gateway.v1 import events_pb2, live_gateway_pb2
from trade.type.v1 import decimal_pb2, errors_pb2, fill_pb2, order_pb2, venue_pb2

from services.live_gateway.domain.model import (
    ConnectionState,
    ExecType,
    ExecutionReport,
    Fill,
    Liquidity,
    OrderSpec,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    Venue,
)
from services.runtime.errors import FieldViolation, invalid_argument

DECIMAL_RE = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")


def dec_str(value: Decimal) -> str:
    """Normalized Decimal text: no exponent, no trailing zeros, never "-0"."""
    text = format(value.normalize(), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def dec_pb(value: Decimal | None) -> decimal_pb2.Decimal | None:
    return None if value is None else decimal_pb2.Decimal(value=dec_str(value))


def parse_dec(msg: Any, has: bool, field: str, violations: list[FieldViolation]) -> Decimal | None:
    """A trade.type.v1.Decimal that may be absent; a present but malformed one is a violation."""
    if not has:
        return None
    text = msg.value
    if not DECIMAL_RE.match(text):
        violations.append(FieldViolation(field, f"not a decimal: {text!r}"))
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        violations.append(FieldViolation(field, f"not a decimal: {text!r}"))
        return None


def dec_or_none(msg: Any, has: bool) -> Decimal | None:
    """Lenient read of a Decimal from a trusted source (a venue)."""
    if not has or not DECIMAL_RE.match(msg.value):
        return None
    return Decimal(msg.value)


def venue_from_pb(value: int) -> Venue | None:
    if value == venue_pb2.VENUE_UNSPECIFIED:
        return None
    name = venue_pb2.Venue.Name(value).removeprefix("VENUE_")  # type: ignore[arg-type]
    return Venue(name.lower())


def venue_pb(venue: Venue) -> venue_pb2.Venue.ValueType:
    return venue_pb2.Venue.Value("VENUE_" + venue.value.upper())


def side_pb(side: Side | None) -> order_pb2.Side.ValueType:
    return order_pb2.Side.Value(f"SIDE_{side.value}") if side else order_pb2.SIDE_UNSPECIFIED


def side_from_pb(value: int) -> Side | None:
    if value == order_pb2.SIDE_BUY:
        return Side.BUY
    if value == order_pb2.SIDE_SELL:
        return Side.SELL
    return None


def status_pb(status: OrderStatus | None) -> order_pb2.OrderStatus.ValueType:
    return order_pb2.OrderStatus.Value(f"ORDER_STATUS_{status.value}") if status else order_pb2.ORDER_STATUS_UNSPECIFIED


def status_from_pb(value: int) -> OrderStatus | None:
    if value == order_pb2.ORDER_STATUS_UNSPECIFIED:
        return None
    return OrderStatus(order_pb2.OrderStatus.Name(value).removeprefix("ORDER_STATUS_"))  # type: ignore[arg-type]


def order_type_pb(value: OrderType) -> order_pb2.OrderType.ValueType:
    return order_pb2.OrderType.Value(f"ORDER_TYPE_{value.value}")


def tif_pb(value: TimeInForce) -> order_pb2.TimeInForce.ValueType:
    return order_pb2.TimeInForce.Value(f"TIME_IN_FORCE_{value.value}")


def exec_type_pb(value: ExecType) -> events_pb2.ExecType.ValueType:
    return events_pb2.ExecType.Value(f"EXEC_TYPE_{value.value}")


def liquidity_pb(value: Liquidity) -> fill_pb2.Liquidity.ValueType:
    return fill_pb2.Liquidity.Value(f"LIQUIDITY_{value.value}")


def liquidity_from_pb(value: int) -> Liquidity:
    if value == fill_pb2.LIQUIDITY_MAKER:
        return Liquidity.MAKER
    if value == fill_pb2.LIQUIDITY_TAKER:
        return Liquidity.TAKER
    return Liquidity.UNSPECIFIED


def reason_pb(reason: str) -> errors_pb2.ErrorReason.ValueType:
    if not reason:
        return errors_pb2.ERROR_REASON_UNSPECIFIED
    try:
        return errors_pb2.ErrorReason.Value(f"ERROR_REASON_{reason}")
    except ValueError:
        return errors_pb2.ERROR_REASON_VENUE_REJECTED


def reason_from_pb(value: int) -> str:
    if value == errors_pb2.ERROR_REASON_UNSPECIFIED:
        return ""
    try:
        return errors_pb2.ErrorReason.Name(value).removeprefix("ERROR_REASON_")  # type: ignore[arg-type]
    except ValueError:
        return "VENUE_REJECTED"


def connection_state_pb(value: ConnectionState) -> live_gateway_pb2.ConnectionState.ValueType:
    return live_gateway_pb2.ConnectionState.Value(f"CONNECTION_STATE_{value.value}")


def spec_from_pb(spec: order_pb2.OrderSpec, prefix: str) -> OrderSpec:
    """Parse and check an OrderSpec's syntax; the semantic rules are the gateway's (validate_spec)."""
    violations: list[FieldViolation] = []
    side = side_from_pb(spec.side)
    if side is None:
        violations.append(FieldViolation(f"{prefix}.side", "BUY or SELL required"))
    order_type = None
    if spec.order_type != order_pb2.ORDER_TYPE_UNSPECIFIED and spec.order_type in order_pb2.OrderType.values():
        order_type = OrderType(order_pb2.OrderType.Name(spec.order_type).removeprefix("ORDER_TYPE_"))
    else:
        violations.append(FieldViolation(f"{prefix}.order_type", "MARKET, LIMIT, STOP or STOP_LIMIT required"))
    quantity = parse_dec(spec.quantity, spec.HasField("quantity"), f"{prefix}.quantity", violations)
    if quantity is None and not spec.HasField("quantity"):
        violations.append(FieldViolation(f"{prefix}.quantity", "required"))
    limit = parse_dec(spec.limit_price, spec.HasField("limit_price"), f"{prefix}.limit_price", violations)
    stop = parse_dec(spec.stop_price, spec.HasField("stop_price"), f"{prefix}.stop_price", violations)
    tif: TimeInForce | None
    if spec.time_in_force == order_pb2.TIME_IN_FORCE_UNSPECIFIED:
        tif = TimeInForce.IOC if order_type in (OrderType.MARKET, OrderType.STOP) else TimeInForce.GTC
    elif spec.time_in_force in order_pb2.TimeInForce.values():
        tif = TimeInForce(order_pb2.TimeInForce.Name(spec.time_in_force).removeprefix("TIME_IN_FORCE_"))
    else:
        tif = None
        violations.append(FieldViolation(f"{prefix}.time_in_force", "unknown value"))
    if violations or side is None or order_type is None or quantity is None or tif is None:
        raise invalid_argument(*violations)
    return OrderSpec(
        side=side,
        order_type=order_type,
        quantity=quantity,
        limit_price=limit,
        stop_price=stop,
        time_in_force=tif,
        expire_time_ns=spec.expire_time_ns,
        post_only=spec.post_only,
        reduce_only=spec.reduce_only,
    )


def spec_pb(spec: OrderSpec) -> order_pb2.OrderSpec:
    return order_pb2.OrderSpec(
        side=side_pb(spec.side),
        order_type=order_type_pb(spec.order_type),
        quantity=dec_pb(spec.quantity),
        limit_price=dec_pb(spec.limit_price),
        stop_price=dec_pb(spec.stop_price),
        time_in_force=tif_pb(spec.time_in_force),
        expire_time_ns=spec.expire_time_ns,
        post_only=spec.post_only,
        reduce_only=spec.reduce_only,
    )


def fill_pb(fill: Fill) -> fill_pb2.Fill:
    return fill_pb2.Fill(
        fill_id=fill.fill_id,
        order_id=fill.order_id,
        client_order_id=fill.client_order_id,
        account_id=fill.account_id,
        symbol=fill.symbol,
        side=side_pb(fill.side),
        price=dec_pb(fill.price),
        quantity=dec_pb(fill.quantity),
        fee=dec_pb(fill.fee),
        fee_currency=fill.fee_currency,
        liquidity=liquidity_pb(fill.liquidity),
        venue=venue_pb(fill.venue),
        venue_order_id=fill.venue_order_id,
        venue_trade_id=fill.venue_trade_id,
        event_time_ns=fill.event_time_ns,
        receive_time_ns=fill.receive_time_ns,
    )


def report_pb(report: ExecutionReport) -> events_pb2.ExecutionReport:
    ex = report.execution
    return events_pb2.ExecutionReport(
        report_id=report.report_id,
        venue=venue_pb(ex.venue),
        account_id=ex.account_id,
        symbol=ex.symbol,
        order_id=ex.order_id,
        client_order_id=report.client_order_id,
        venue_order_id=ex.venue_order_id,
        exec_type=exec_type_pb(ex.exec_type),
        order_status=status_pb(ex.order_status),
        side=side_pb(ex.side),
        quantity=dec_pb(report.quantity),
        limit_price=dec_pb(report.limit_price),
        last_price=dec_pb(ex.last_price if report.fill else None),
        last_quantity=dec_pb(ex.last_quantity if report.fill else None),
        cum_qty=dec_pb(ex.cum_qty),
        leaves_qty=dec_pb(ex.leaves_qty),
        avg_price=dec_pb(report.avg_price),
        fill=fill_pb(report.fill) if report.fill else None,
        reason=reason_pb(ex.reason),
        text=ex.text,
        venue_sequence=ex.venue_sequence,
        event_time_ns=ex.event_time_ns,
        receive_time_ns=ex.receive_time_ns,
    )
