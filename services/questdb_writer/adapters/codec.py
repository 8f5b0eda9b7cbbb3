"""JetStream payloads (trade.type.v1.Fill, trade.oms.v1.OrderEvent, trade.pnl.v1.PnlSnapshot) -> rows.
Undecodable input is counted, not raised. The designated timestamp is the event time, falling back to the
receive time and then to the JetStream storage time (stable across replays)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import structlog
from google.protobuf.message import DecodeError
from trade.oms.v1 import events_pb2 as oms_events_pb2
from trade.pnl.v1 import events_pb2 as pnl_events_pb2
from trade.type.v1 import decimal_pb2, errors_pb2, fill_pb2, order_pb2, pnl_pb2, venue_pb2

from services.questdb_writer.domain.model import (
    TOTAL_SCOPE,
    Batch,
    FillRow,
    Kind,
    OrderEventRow,
    PnlRow,
    Row,
)

log = structlog.get_logger("questdb_writer.codec")

_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]{1,18})?").fullmatch


class Malformed(ValueError):
    """A message that is not a valid record of its stream."""


def _tokens(enum: Any, prefix: str) -> dict[int, str]:
    return {number: name.removeprefix(prefix).lower() for name, number in enum.items()}


_SIDE = _tokens(order_pb2.Side, "SIDE_")
_ORDER_TYPE = _tokens(order_pb2.OrderType, "ORDER_TYPE_")
_STATUS = _tokens(order_pb2.OrderStatus, "ORDER_STATUS_")
_VENUE = _tokens(venue_pb2.Venue, "VENUE_")
_LIQUIDITY = _tokens(fill_pb2.Liquidity, "LIQUIDITY_")
_REASON = _tokens(errors_pb2.ErrorReason, "ERROR_REASON_")
_PNL_KIND = _tokens(pnl_events_pb2.PnlSnapshotKind, "PNL_SNAPSHOT_KIND_")


def parse_decimal(value: decimal_pb2.Decimal, field: str) -> Decimal:
    if not _DECIMAL(value.value):
        raise Malformed(f"{field}: not a decimal: {value.value!r}")
    return Decimal(value.value)


def _optional(parent: object, field: str) -> Decimal | None:
    if not parent.HasField(field):  # type: ignore[attr-defined]
        return None
    return parse_decimal(getattr(parent, field), field)


def fill_row(fill: fill_pb2.Fill, stored_ns: int) -> FillRow:
    if not fill.fill_id or not fill.account_id or not fill.symbol:
        raise Malformed("fill without fill_id, account_id or symbol")
    if not fill.HasField("price") or not fill.HasField("quantity"):
        raise Malformed(f"fill {fill.fill_id} without price or quantity")
    return FillRow(
        ts_ns=fill.event_time_ns or fill.receive_time_ns or stored_ns,
        fill_id=fill.fill_id,
        order_id=fill.order_id,
        client_order_id=fill.client_order_id,
        account_id=fill.account_id,
        symbol=fill.symbol,
        side=_SIDE.get(fill.side, "unspecified"),
        price=parse_decimal(fill.price, "price"),
        quantity=parse_decimal(fill.quantity, "quantity"),
        fee=_optional(fill, "fee"),
        fee_currency=fill.fee_currency,
        liquidity=_LIQUIDITY.get(fill.liquidity, "unspecified"),
        venue=_VENUE.get(fill.venue, "unspecified"),
        venue_order_id=fill.venue_order_id,
        venue_trade_id=fill.venue_trade_id,
        strategy_id=fill.strategy_id,
        parent_order_id=fill.parent_order_id,
        receive_time_ns=fill.receive_time_ns,
    )


def order_event_row(event: oms_events_pb2.OrderEvent, stored_ns: int) -> OrderEventRow:
    if not event.event_id or not event.order_id:
        raise Malformed("order event without event_id or order_id")
    order, spec = event.order, event.order.spec
    kind = event.WhichOneof("event") or "unspecified"
    return OrderEventRow(
        ts_ns=event.event_time_ns or event.receive_time_ns or stored_ns,
        event_id=event.event_id,
        account_id=event.account_id or order.account_id,
        symbol=event.symbol or order.symbol,
        order_id=event.order_id,
        client_order_id=event.client_order_id or order.client_order_id,
        order_version=event.order_version,
        event_type=kind,
        status=_STATUS.get(order.status, "unspecified"),
        side=_SIDE.get(spec.side, "unspecified"),
        order_type=_ORDER_TYPE.get(spec.order_type, "unspecified"),
        quantity=_optional(spec, "quantity"),
        limit_price=_optional(spec, "limit_price"),
        stop_price=_optional(spec, "stop_price"),
        cum_qty=_optional(order, "cum_qty"),
        leaves_qty=_optional(order, "leaves_qty"),
        avg_price=_optional(order, "avg_price"),
        cum_fee=_optional(order, "cum_fee"),
        fee_currency=order.fee_currency,
        venue=_VENUE.get(order.venue, "unspecified"),
        strategy_id=order.strategy_id,
        parent_order_id=order.parent_order_id,
        reason=_REASON.get(order.reason, "unspecified"),
        reason_message=order.reason_message,
        fill_id=event.filled.fill.fill_id if kind == "filled" else "",
        receive_time_ns=event.receive_time_ns,
    )


def _pnl_row(snapshot: pnl_events_pb2.PnlSnapshot, ts_ns: int, pnl: pnl_pb2.Pnl, symbol: str) -> PnlRow:
    return PnlRow(
        ts_ns=ts_ns,
        snapshot_id=snapshot.snapshot_id,
        kind=_PNL_KIND.get(snapshot.kind, "unspecified"),
        account_id=snapshot.account_id,
        trading_day=snapshot.trading_day,
        symbol=symbol,
        currency=pnl.currency,
        realized_pnl=_optional(pnl, "realized_pnl"),
        unrealized_pnl=_optional(pnl, "unrealized_pnl"),
        fees=_optional(pnl, "fees"),
        net_pnl=_optional(pnl, "net_pnl"),
        day_net_pnl=_optional(pnl, "day_net_pnl"),
        position_quantity=_optional(pnl, "position_quantity"),
        mark_price=_optional(pnl, "mark_price"),
        fill_id=snapshot.fill_id,
    )


def pnl_rows(snapshot: pnl_events_pb2.PnlSnapshot, stored_ns: int) -> list[PnlRow]:
    """The account total (symbol "*") and one row per symbol."""
    if not snapshot.snapshot_id or not snapshot.account_id:
        raise Malformed("PnL snapshot without snapshot_id or account_id")
    ts = snapshot.as_of_time_ns or stored_ns
    rows = [_pnl_row(snapshot, ts, snapshot.total, TOTAL_SCOPE)]
    rows.extend(_pnl_row(snapshot, ts, pnl, pnl.symbol) for pnl in snapshot.by_symbol if pnl.symbol)
    return rows


def decode(kind: Kind, payload: bytes, stored_ns: int) -> list[Row]:
    if kind is Kind.FILLS:
        return [fill_row(fill_pb2.Fill.FromString(payload), stored_ns)]
    if kind is Kind.ORDER_EVENTS:
        return [order_event_row(oms_events_pb2.OrderEvent.FromString(payload), stored_ns)]
    return list(pnl_rows(pnl_events_pb2.PnlSnapshot.FromString(payload), stored_ns))


def decode_batch(kind: Kind, messages: Iterable[tuple[bytes, int, int]]) -> Batch:
    """messages: (payload, stream sequence, storage time ns)."""
    batch = Batch(kind)
    for payload, sequence, stored_ns in messages:
        batch.messages += 1
        batch.last_stream_sequence = max(batch.last_stream_sequence, sequence)
        try:
            batch.rows.extend(decode(kind, payload, stored_ns))
        except (DecodeError, Malformed) as exc:
            batch.malformed += 1
            log.warning("questdb_writer.malformed", kind=kind.value, sequence=sequence, error=str(exc))
    return batch
