"""trade.type.v1 protobuf <-> ptrc domain. Undecodable fills raise MalformedFill (the caller counts and skips)."""

from __future__ import annotations

import re
from decimal import Decimal

from google.protobuf.message import DecodeError
from trade.type.v1 import decimal_pb2, fill_pb2, order_pb2, position_pb2

from services.ptrc.domain.model import FillRecord, Position, Side

_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?").fullmatch
_SIDES = {order_pb2.SIDE_BUY: Side.BUY, order_pb2.SIDE_SELL: Side.SELL}


class MalformedFill(ValueError):
    """A message on FILLS that is not a usable trade.type.v1.Fill."""


def parse_decimal(value: decimal_pb2.Decimal, field: str) -> Decimal:
    if not _DECIMAL(value.value):
        raise MalformedFill(f"{field}: not a decimal: {value.value!r}")
    return Decimal(value.value)


def format_decimal(value: Decimal) -> str:
    """The normalized wire form: no exponent, no trailing fraction zeros, never "-0"."""
    if value == 0:
        return "0"
    text = format(value.normalize(), "f")
    return text


def dec(value: Decimal) -> decimal_pb2.Decimal:
    return decimal_pb2.Decimal(value=format_decimal(value))


def fill_record(fill: fill_pb2.Fill) -> FillRecord:
    if not fill.fill_id or not fill.account_id or not fill.symbol:
        raise MalformedFill("fill without fill_id, account_id or symbol")
    side = _SIDES.get(fill.side)
    if side is None:
        raise MalformedFill(f"fill {fill.fill_id}: side unspecified")
    quantity = parse_decimal(fill.quantity, "quantity")
    price = parse_decimal(fill.price, "price")
    if quantity <= 0 or price <= 0:
        raise MalformedFill(f"fill {fill.fill_id}: quantity and price must be > 0")
    fee = parse_decimal(fill.fee, "fee") if fill.HasField("fee") else Decimal(0)
    return FillRecord(
        fill_id=fill.fill_id,
        account_id=fill.account_id,
        symbol=fill.symbol,
        side=side,
        price=price,
        quantity=quantity,
        fee=fee,
        fee_currency=fill.fee_currency,
        event_time_ns=fill.event_time_ns or fill.receive_time_ns,
    )


def decode_fill(payload: bytes) -> FillRecord:
    fill = fill_pb2.Fill()
    try:
        fill.ParseFromString(payload)
    except DecodeError as exc:
        raise MalformedFill(f"not a Fill: {exc}") from exc
    return fill_record(fill)


def position_pb(position: Position) -> position_pb2.Position:
    out = position_pb2.Position(
        account_id=position.account_id,
        symbol=position.symbol,
        quantity=dec(position.quantity),
        cost_basis=dec(position.cost_basis),
        realized_pnl=dec(position.realized_pnl),
        fees=dec(position.fees),
        bought_quantity=dec(position.bought_quantity),
        sold_quantity=dec(position.sold_quantity),
        fill_count=position.fill_count,
        last_fill_id=position.last_fill_id,
        update_time_ns=position.update_time_ns,
        version=position.version,
    )
    if position.avg_entry_price is not None:
        out.avg_entry_price.CopyFrom(dec(position.avg_entry_price))
    return out
