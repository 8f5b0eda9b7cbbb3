"""The ingest service: write each batch until the store accepts it, then count it.

A batch is acknowledged upstream only after `ingest` returns, so a failed write (the store down or restarting)
is retried here, with backoff, instead of being lost; the store's dedup keys make a repeated write harmless.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import structlog

from services.sink_ticks.domain.model import StatsSnapshot, TableCounters, TickBatch
from services.sink_ticks.domain.ports import Clock, Sleeper, TickWriter

log = structlog.get_logger("sink_ticks")


@dataclass(frozen=True)
class RetryPolicy:
    first_backoff_s: float = 0.1
    max_backoff_s: float = 2.0


class TickIngest:
    def __init__(
        self,
        writer: TickWriter,
        clock: Clock,
        sleep: Sleeper,
        trades_table: str,
        quotes_table: str,
        retry: RetryPolicy = RetryPolicy(),
    ) -> None:
        self._writer = writer
        self._clock = clock
        self._sleep = sleep
        self._retry = retry
        self._trades = TableCounters(trades_table)
        self._quotes = TableCounters(quotes_table)
        self._malformed = 0
        self.last_write_ok = True
        self.last_error = ""

    async def ingest(self, batch: TickBatch) -> None:
        """Write the batch; returns once the store accepted every row. Retries forever with capped backoff."""
        self._malformed += batch.malformed
        if not len(batch):
            return
        backoff = self._retry.first_backoff_s
        while True:
            try:
                await self._writer.write(batch.trades, batch.quotes)
                break
            except Exception as exc:
                self.last_write_ok = False
                self.last_error = repr(exc)
                for counters, rows in ((self._trades, batch.trades), (self._quotes, batch.quotes)):
                    if rows:
                        counters.write_errors += 1
                log.warning(
                    "sink_ticks.write_failed",
                    error=repr(exc),
                    rows=len(batch),
                    messages=batch.messages,
                    backoff_s=backoff,
                )
                await self._writer.reset()
                await self._sleep(backoff)
                backoff = min(backoff * 2, self._retry.max_backoff_s)
        self.last_write_ok = True
        now = self._clock.now_ns()
        if batch.trades:
            _count(self._trades, now, max(t.ts_ns for t in batch.trades), len(batch.trades))
        if batch.quotes:
            _count(self._quotes, now, max(q.ts_ns for q in batch.quotes), len(batch.quotes))

    def stats(self, tables: frozenset[str] = frozenset()) -> StatsSnapshot:
        chosen = tuple(replace(t) for t in (self._trades, self._quotes) if not tables or t.table in tables)
        return StatsSnapshot(chosen, self._clock.now_ns(), self._malformed)


def _count(counters: TableCounters, now_ns: int, newest_event_ns: int, rows: int) -> None:
    counters.rows_written += rows
    counters.batches_written += 1
    counters.last_flush_time_ns = now_ns
    counters.last_event_time_ns = max(counters.last_event_time_ns, newest_event_ns)
