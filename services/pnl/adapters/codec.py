"""trade.* protobuf <-> pnl domain. Undecodable fills raise MalformedFill (the caller counts and skips)."""

from __future__ import annotations

import re
from decimal import Decimal

from google.protobuf.message import DecodeError
from trade.normalizer.v1 import events_pb2 as md_events_pb2
from trade.pnl.v1 import events_pb2
from trade.type.v1 import decimal_pb2, fill_pb2, order_pb2, pnl_pb2

from services.pnl.domain.model import FillRecord, PnlFigures, Side, Snapshot, SnapshotKind

_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?").fullmatch
_SIDES = {order_pb2.SIDE_BUY: Side.BUY, order_pb2.SIDE_SELL: Side.SELL}
KIND_PB = {
    SnapshotKind.INTRADAY: events_pb2.PNL_SNAPSHOT_KIND_INTRADAY,
    SnapshotKind.END_OF_DAY: events_pb2.PNL_SNAPSHOT_KIND_END_OF_DAY,
}


class MalformedFill(ValueError):
    """A message on FILLS that is not a usable trade.type.v1.Fill."""


def parse_decimal(value: decimal_pb2.Decimal, field: str) -> Decimal:
    if not _DECIMAL(value.value):
        raise MalformedFill(f"{field}: not a decimal: {value.value!r}")
    return Decimal(value.value)


def format_decimal(value: Decimal) -> str:
    """The normalized wire form: no exponent, no trailing fraction zeros, never "-0"."""
    return "0" if value == 0 else format(value.normalize(), "f")


def dec(value: Decimal) -> decimal_pb2.Decimal:
    return decimal_pb2.Decimal(value=format_decimal(value))


def decode_fill(payload: bytes) -> FillRecord:
    fill = fill_pb2.Fill()
    try:
        fill.ParseFromString(payload)
    except DecodeError as exc:
        raise MalformedFill(f"not a Fill: {exc}") from exc
    if not fill.fill_id or not fill.account_id or not fill.symbol:
        raise MalformedFill("fill without fill_id, account_id or symbol")
    side = _SIDES.get(fill.side)
    if side is None:
        raise MalformedFill(f"fill {fill.fill_id}: side unspecified")
    price, quantity = parse_decimal(fill.price, "price"), parse_decimal(fill.quantity, "quantity")
    if price <= 0 or quantity <= 0:
        raise MalformedFill(f"fill {fill.fill_id}: quantity and price must be > 0")
    return FillRecord(
        fill_id=fill.fill_id,
        account_id=fill.account_id,
        symbol=fill.symbol,
        strategy_id=fill.strategy_id,
        side=side,
        price=price,
        quantity=quantity,
        fee=parse_decimal(fill.fee, "fee") if fill.HasField("fee") else Decimal(0),
        fee_currency=fill.fee_currency,
        event_time_ns=fill.event_time_ns or fill.receive_time_ns,
    )


QuoteTick = tuple[str, Decimal | None, Decimal | None, int]


def decode_quotes(payload: bytes) -> list[QuoteTick] | None:
    """(symbol, bid, ask, event time) of every canonical quote event of an MD message (a MarketDataBatch), in
    order; other events are left out. None when the payload is not a MarketDataBatch."""
    batch = md_events_pb2.MarketDataBatch()
    try:
        batch.ParseFromString(payload)
    except DecodeError:
        return None
    out = []
    for event in batch.events:
        if event.WhichOneof("payload") != "quote" or not event.quote.symbol:
            continue
        quote = event.quote
        sides = []
        for field in ("bid_price", "ask_price"):
            text = getattr(quote, field).value if quote.HasField(field) else ""
            sides.append(Decimal(text) if _DECIMAL(text) else None)
        out.append(
            (quote.symbol, sides[0], sides[1], quote.event_time_ns or quote.receive_time_ns or event.publish_time_ns)
        )
    return out


def figures_pb(figures: PnlFigures) -> pnl_pb2.Pnl:
    out = pnl_pb2.Pnl(
        account_id=figures.account_id,
        symbol=figures.symbol,
        strategy_id=figures.strategy_id,
        currency=figures.currency,
        realized_pnl=dec(figures.realized_pnl),
        unrealized_pnl=dec(figures.unrealized_pnl),
        fees=dec(figures.fees),
        net_pnl=dec(figures.net_pnl),
        day_net_pnl=dec(figures.day_net_pnl),
        mark_time_ns=figures.mark_time_ns,
        as_of_time_ns=figures.as_of_time_ns,
    )
    if figures.position_quantity is not None:
        out.position_quantity.CopyFrom(dec(figures.position_quantity))
    if figures.mark_price is not None:
        out.mark_price.CopyFrom(dec(figures.mark_price))
    return out


def snapshot_pb(snapshot: Snapshot) -> events_pb2.PnlSnapshot:
    return events_pb2.PnlSnapshot(
        snapshot_id=snapshot.snapshot_id,
        kind=KIND_PB[snapshot.kind],
        account_id=snapshot.account_id,
        trading_day=snapshot.trading_day,
        as_of_time_ns=snapshot.as_of_time_ns,
        total=figures_pb(snapshot.total),
        by_symbol=[figures_pb(f) for f in snapshot.by_symbol],
        fill_id=snapshot.fill_id,
    )
