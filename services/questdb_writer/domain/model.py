"""Rows as the writer stores them. Amounts are exact Decimals (None = absent), times ns since the Unix epoch.

Every row has a designated timestamp `ts_ns` and a unique key `key`: the table's DEDUP UPSERT KEYS are
(ts, key [, scope]), so writing a row again (a redelivery, a replayed range) keeps one row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import NamedTuple


class Kind(Enum):
    """What a table holds (and which stream feeds it)."""

    FILLS = "fills"
    ORDER_EVENTS = "order_events"
    PNL_SNAPSHOTS = "pnl_snapshots"


class FillRow(NamedTuple):
    ts_ns: int
    fill_id: str
    order_id: str
    client_order_id: str
    account_id: str
    symbol: str
    side: str
    price: Decimal
    quantity: Decimal
    fee: Decimal | None
    fee_currency: str
    liquidity: str
    venue: str
    venue_order_id: str
    venue_trade_id: str
    strategy_id: str
    parent_order_id: str
    receive_time_ns: int

    @property
    def key(self) -> str:
        return self.fill_id


class OrderEventRow(NamedTuple):
    ts_ns: int
    event_id: str
    account_id: str
    symbol: str
    order_id: str
    client_order_id: str
    order_version: int
    event_type: str
    status: str
    side: str
    order_type: str
    quantity: Decimal | None
    limit_price: Decimal | None
    stop_price: Decimal | None
    cum_qty: Decimal | None
    leaves_qty: Decimal | None
    avg_price: Decimal | None
    cum_fee: Decimal | None
    fee_currency: str
    venue: str
    strategy_id: str
    parent_order_id: str
    reason: str
    reason_message: str
    fill_id: str
    receive_time_ns: int

    @property
    def key(self) -> str:
        return self.event_id


# The scope of the account-total row of a PnL snapshot (the others carry their symbol).
TOTAL_SCOPE = "*"


class PnlRow(NamedTuple):
    """One line of a PnL snapshot: the total (symbol "*") or one symbol."""

    ts_ns: int
    snapshot_id: str
    kind: str
    account_id: str
    trading_day: str
    symbol: str
    currency: str
    realized_pnl: Decimal | None
    unrealized_pnl: Decimal | None
    fees: Decimal | None
    net_pnl: Decimal | None
    day_net_pnl: Decimal | None
    position_quantity: Decimal | None
    mark_price: Decimal | None
    fill_id: str

    @property
    def key(self) -> str:
        return f"{self.snapshot_id}/{self.symbol}"


Row = FillRow | OrderEventRow | PnlRow


@dataclass(slots=True)
class Batch:
    """What one JetStream batch decoded to. Malformed messages are counted and skipped, never retried."""

    kind: Kind
    rows: list[Row] = field(default_factory=list)
    messages: int = 0
    malformed: int = 0
    last_stream_sequence: int = 0


@dataclass(slots=True)
class TableCounters:
    table: str
    source_stream: str
    rows_written: int = 0
    duplicates_skipped: int = 0
    malformed_count: int = 0
    write_errors: int = 0
    last_stream_sequence: int = 0
    last_write_time_ns: int = 0
