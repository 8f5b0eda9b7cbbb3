"""Snapshots of what risk derived from FILLS and ORDERS (net positions, the orders it tracks) in the object store
RISK_SNAPSHOTS, so that a restart reads those streams only beyond the snapshot's positions (402k ORDERS events took
11 s with risk restarted alone, 19-22 s in a full mesh start). The streams stay the source of truth: a snapshot
that does not match them is ignored and they are replayed from the start (services/runtime/snapshots.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

import structlog
from google.protobuf.message import DecodeError
from nats.errors import Error as NatsError
from trade.risk.v1 import snapshot_pb2

from services.risk.adapters.codec import SIDE_FROM_PB, SIDE_TO_PB, dec_pb
from services.risk.domain.state import ExposureBook, TrackedOrder
from services.runtime.bus import Bus
from services.runtime.snapshots import SnapshotStore, StreamPosition, frame, parse

log = structlog.get_logger("risk.snapshot")

FORMAT = 1
BUCKET = "RISK_SNAPSHOTS"
_CHUNK = 10_000  # orders, fill ids or positions per message


@dataclass(frozen=True, slots=True)
class Snapshot:
    positions: dict[str, StreamPosition]  # per feed
    net_positions: dict[tuple[str, str], Decimal]
    fill_ids: list[str]
    orders: dict[str, TrackedOrder]


def _chunks(items: Sequence[object]) -> range:
    return range(0, len(items), _CHUNK)


def encode(book: ExposureBook, positions: Mapping[str, StreamPosition], now_ns: int) -> bytes:
    net, fill_ids, orders = book.contents()
    header = snapshot_pb2.RiskSnapshot(
        format=FORMAT,
        taken_time_ns=now_ns,
        positions=[
            snapshot_pb2.StreamPosition(
                feed=feed,
                stream=p.stream,
                stream_created_ns=p.stream_created_ns,
                subject_filter=p.subject_filter,
                sequence=p.sequence,
            )
            for feed, p in positions.items()
        ],
    )
    parts = [frame(header)]
    net_items = list(net.items())
    for start in _chunks(net_items):
        rows = [
            snapshot_pb2.NetPosition(account_id=account, symbol=symbol, quantity=dec_pb(quantity))
            for (account, symbol), quantity in net_items[start : start + _CHUNK]
        ]
        parts.append(frame(snapshot_pb2.RiskSnapshot(net_positions=rows)))
    for start in _chunks(fill_ids):
        parts.append(frame(snapshot_pb2.RiskSnapshot(fill_ids=fill_ids[start : start + _CHUNK])))
    order_items = list(orders.items())
    for start in _chunks(order_items):
        tracked = [
            snapshot_pb2.TrackedOrder(
                order_id=order_id,
                account_id=o.account_id,
                symbol=o.symbol,
                side=SIDE_TO_PB[o.side],
                leaves_qty=dec_pb(o.leaves_qty),
                version=o.version,
                open=o.open,
                filled_qty=dec_pb(o.filled_qty),
            )
            for order_id, o in order_items[start : start + _CHUNK]
        ]
        parts.append(frame(snapshot_pb2.RiskSnapshot(orders=tracked)))
    return b"".join(parts)


def decode(data: bytes) -> Snapshot:
    """Raises ValueError for a format this code does not know or a truncated snapshot (DecodeError if malformed)."""
    header, messages = parse(data, snapshot_pb2.RiskSnapshot, FORMAT)
    positions = {
        p.feed: StreamPosition(p.stream, p.stream_created_ns, p.subject_filter, p.sequence) for p in header.positions
    }
    snapshot = Snapshot(positions, {}, [], {})
    for message in messages:
        for row in message.net_positions:
            snapshot.net_positions[(row.account_id, row.symbol)] = Decimal(row.quantity.value or "0")
        snapshot.fill_ids.extend(message.fill_ids)
        for o in message.orders:
            snapshot.orders[o.order_id] = TrackedOrder(
                o.account_id,
                o.symbol,
                SIDE_FROM_PB[o.side],
                Decimal(o.leaves_qty.value or "0"),
                o.version,
                o.open,
                Decimal(o.filled_qty.value or "0"),
            )
    return snapshot


class ExposureSnapshots:
    """Loads the latest snapshot that matches the FILLS and ORDERS feeds into an empty book, and writes new ones.

    `feeds`: (feed kind, stream, subject filter) of each snapshotted feed."""

    def __init__(
        self,
        bus: Bus,
        store: SnapshotStore,
        feeds: Sequence[tuple[str, str, str]],
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.bus = bus
        self.store = store
        self.feeds = list(feeds)
        self.clock = clock
        self.name = "exposure " + " ".join(f"{stream} {subject}" for _, stream, subject in self.feeds)

    async def restore(self, book: ExposureBook) -> dict[str, int]:
        """Load the snapshot into the empty book; the stream sequence it reflects per feed ({}: replay all)."""
        started = time.monotonic()
        try:
            data = await self.store.load(self.name)
            if data is None:
                log.info("risk.snapshot_none", name=self.name)
                return {}
            snapshot = decode(data)
        except (ValueError, DecodeError, ArithmeticError, KeyError, TimeoutError, NatsError) as exc:
            log.warning("risk.snapshot_unusable", name=self.name, error=f"{type(exc).__name__}: {exc}")
            return {}
        for feed, stream, subject in self.feeds:
            p = snapshot.positions.get(feed)
            if p is None or not await p.usable(self.bus, stream, subject):
                log.warning("risk.snapshot_mismatch", name=self.name, feed=feed, snapshot=str(p))
                return {}
        book.load(snapshot.net_positions, snapshot.fill_ids, snapshot.orders)
        sequences = {feed: snapshot.positions[feed].sequence for feed, _, _ in self.feeds}
        log.info(
            "risk.snapshot_loaded",
            orders=len(snapshot.orders),
            bytes=len(data),
            seconds=round(time.monotonic() - started, 3),
            **{f"{feed}_seq": seq for feed, seq in sequences.items()},
        )
        return sequences

    async def save(self, book: ExposureBook, sequences: Mapping[str, int]) -> bool:
        """Write the book as of these stream sequences per feed; False (logged) when it could not be written."""
        started = time.monotonic()
        try:
            positions = {
                feed: await StreamPosition.current(self.bus, stream, subject, sequences[feed])
                for feed, stream, subject in self.feeds
            }
            data = encode(book, positions, self.clock())
            await self.store.save(self.name, data)
        except Exception as exc:  # a snapshot is an optimization: never let it fail a start or a stop
            log.warning("risk.snapshot_not_saved", name=self.name, error=f"{type(exc).__name__}: {exc}")
            return False
        log.info(
            "risk.snapshot_saved", bytes=len(data), seconds=round(time.monotonic() - started, 3), **dict(sequences)
        )
        return True
