"""Tick rows as the sink stores them. Prices and quantities are exact Decimals, never floats."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple


class TradeRow(NamedTuple):
    """One public trade. Replays are deduplicated on (ts, symbol, trade_id). (A NamedTuple: immutable and cheap
    to build, which matters at tens of thousands of rows per second.)"""

    symbol: str
    venue: str
    trade_id: str
    sequence: int
    price: Decimal
    quantity: Decimal
    aggressor_side: str
    event_time_ns: int
    receive_time_ns: int
    publish_time_ns: int

    @property
    def ts_ns(self) -> int:
        """The designated timestamp: venue event time, falling back to receive then publish time."""
        return self.event_time_ns or self.receive_time_ns or self.publish_time_ns


class QuoteRow(NamedTuple):
    """One top-of-book quote; an empty side has no price/size. Replays are deduplicated on (ts, symbol, sequence)."""

    symbol: str
    venue: str
    sequence: int
    bid_price: Decimal | None
    bid_size: Decimal | None
    ask_price: Decimal | None
    ask_size: Decimal | None
    event_time_ns: int
    receive_time_ns: int
    publish_time_ns: int

    @property
    def ts_ns(self) -> int:
        return self.event_time_ns or self.receive_time_ns or self.publish_time_ns


@dataclass(slots=True)
class TickBatch:
    """What one JetStream batch decoded to: a message carries one or more events, so one message may yield many
    rows. Malformed input (an undecodable or empty message, or an invalid event inside a message, each counted
    once) is skipped, never retried."""

    trades: list[TradeRow] = field(default_factory=list)
    quotes: list[QuoteRow] = field(default_factory=list)
    malformed: int = 0
    messages: int = 0

    def __len__(self) -> int:
        return len(self.trades) + len(self.quotes)


@dataclass(slots=True)
class TableCounters:
    """Write counters of one table."""

    table: str
    rows_written: int = 0
    batches_written: int = 0
    write_errors: int = 0
    last_flush_time_ns: int = 0
    last_event_time_ns: int = 0

    def lag_ns(self, now_ns: int) -> int:
        return now_ns - self.last_event_time_ns if self.last_event_time_ns else 0


@dataclass(frozen=True, slots=True)
class StatsSnapshot:
    """Counters over all tables at one instant."""

    tables: tuple[TableCounters, ...]
    now_ns: int
    malformed: int  # malformed messages and invalid events skipped (TickBatch.malformed summed)

    @property
    def rows_written(self) -> int:
        return sum(t.rows_written for t in self.tables)

    @property
    def batches_written(self) -> int:
        return sum(t.batches_written for t in self.tables)

    @property
    def max_lag_ns(self) -> int:
        return max((t.lag_ns(self.now_ns) for t in self.tables), default=0)


@dataclass(frozen=True, slots=True)
class ConsumerView:
    """State of one upstream consumer feeding the sink. state: running | reconnecting | failed | starting."""

    stream: str
    consumer: str
    filter_subject: str
    state: str
    pending_messages: int
    ack_pending: int
    last_acked_stream_sequence: int
    last_ack_time_ns: int
    last_error: str
