"""trade.type.v1 book messages <-> the marketdata book domain."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from trade.type.v1 import decimal_pb2, market_data_pb2, venue_pb2

from services.marketdata.domain.book import Delta, Level, Levels, Snapshot


def decimal_text(value: Decimal) -> str:
    d = value.normalize()
    return "0" if d == 0 else format(d, "f")


def _levels(pbs: Iterable[market_data_pb2.BookLevel]) -> Levels:
    return tuple(Level(Decimal(p.price.value), Decimal(p.quantity.value), p.order_count) for p in pbs)


def _level_pbs(levels: Levels) -> list[market_data_pb2.BookLevel]:
    return [
        market_data_pb2.BookLevel(
            price=decimal_pb2.Decimal(value=decimal_text(lvl.price)),
            quantity=decimal_pb2.Decimal(value=decimal_text(lvl.quantity)),
            order_count=lvl.order_count,
        )
        for lvl in levels
    ]


def delta_from_pb(pb: market_data_pb2.BookDelta) -> Delta:
    return Delta(
        pb.sequence, pb.previous_sequence, _levels(pb.bids), _levels(pb.asks), pb.event_time_ns, pb.receive_time_ns
    )


def snapshot_from_pb(pb: market_data_pb2.BookSnapshot) -> Snapshot:
    return Snapshot(
        pb.sequence, _levels(pb.bids), _levels(pb.asks), pb.event_time_ns, pb.receive_time_ns, pb.depth, pb.venue
    )


def snapshot_pb(symbol: str, snap: Snapshot) -> market_data_pb2.BookSnapshot:
    return market_data_pb2.BookSnapshot(
        symbol=symbol,
        venue=venue_pb2.Venue.ValueType(snap.venue),
        bids=_level_pbs(snap.bids),
        asks=_level_pbs(snap.asks),
        depth=snap.depth,
        sequence=snap.sequence,
        event_time_ns=snap.event_time_ns,
        receive_time_ns=snap.receive_time_ns,
    )


def delta_pb(symbol: str, venue: int, delta: Delta) -> market_data_pb2.BookDelta:
    return market_data_pb2.BookDelta(
        symbol=symbol,
        venue=venue_pb2.Venue.ValueType(venue),
        bids=_level_pbs(delta.bids),
        asks=_level_pbs(delta.asks),
        sequence=delta.sequence,
        previous_sequence=delta.previous_sequence,
        event_time_ns=delta.event_time_ns,
        receive_time_ns=delta.receive_time_ns,
    )
