"""The writer service: drop rows already stored, write the rest until QuestDB accepts them, then count.

A batch is acknowledged upstream only after `ingest` returns. The in-memory set of recently written keys saves
QuestDB the rewrite of a redelivered row (counted as duplicates_skipped); after a restart the table's DEDUP UPSERT
KEYS make a replayed row harmless, so correctness never depends on that memory.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace

import structlog

from services.questdb_writer.domain.model import Batch, Kind, Row, TableCounters
from services.questdb_writer.domain.ports import Clock, RowWriter, Sleeper

log = structlog.get_logger("questdb_writer")


@dataclass(frozen=True)
class RetryPolicy:
    first_backoff_s: float = 0.1
    max_backoff_s: float = 2.0


class RecentKeys:
    """The last `capacity` keys written (insertion-ordered, oldest evicted first)."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._keys: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def add(self, key: str) -> None:
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self._capacity:
            self._keys.popitem(last=False)


class WriterService:
    def __init__(
        self,
        writer: RowWriter,
        clock: Clock,
        sleep: Sleeper,
        tables: dict[Kind, tuple[str, str]],
        remember: int = 100_000,
        retry: RetryPolicy = RetryPolicy(),
    ) -> None:
        """tables: kind -> (table name, source stream)."""
        self._writer = writer
        self._clock = clock
        self._sleep = sleep
        self._retry = retry
        self._counters = {kind: TableCounters(table, stream) for kind, (table, stream) in tables.items()}
        self._recent = {kind: RecentKeys(remember) for kind in tables}
        self.start_time_ns = clock.now_ns()
        self.last_write_ok = True

    async def ingest(self, batch: Batch) -> None:
        counters, recent = self._counters[batch.kind], self._recent[batch.kind]
        counters.malformed_count += batch.malformed
        fresh: list[Row] = []
        keys: set[str] = set()
        for row in batch.rows:
            if row.key in recent or row.key in keys:
                counters.duplicates_skipped += 1
                continue
            keys.add(row.key)
            fresh.append(row)
        if fresh:
            await self._write_until_accepted(batch.kind, fresh, counters)
            for key in keys:
                recent.add(key)
            counters.rows_written += len(fresh)
            counters.last_write_time_ns = self._clock.now_ns()
        counters.last_stream_sequence = max(counters.last_stream_sequence, batch.last_stream_sequence)

    async def _write_until_accepted(self, kind: Kind, rows: list[Row], counters: TableCounters) -> None:
        backoff = self._retry.first_backoff_s
        while True:
            try:
                await self._writer.write(kind, rows)
                self.last_write_ok = True
                return
            except Exception as exc:
                self.last_write_ok = False
                counters.write_errors += 1
                log.warning("questdb_writer.write_failed", table=counters.table, error=repr(exc), backoff_s=backoff)
                await self._sleep(backoff)
                backoff = min(backoff * 2, self._retry.max_backoff_s)

    def stats(self, tables: frozenset[str] = frozenset()) -> list[TableCounters]:
        return [replace(c) for c in self._counters.values() if not tables or c.table in tables]

    def table(self, kind: Kind) -> str:
        return self._counters[kind].table
