"""The ILP writer without QuestDB: concurrent batches are encoded at once but flushed to one table one after
the other (never two commits to a table at a time), tables flush independently, and a batch cancelled while
waiting for its turn gives its sender back untouched."""

from __future__ import annotations

import asyncio
import threading
import time
from decimal import Decimal
from typing import Any

from services.sink_ticks.adapters.questdb_writer import QuestDbIlpWriter
from services.sink_ticks.domain.model import QuoteRow, TradeRow


class FakeBuffer:
    def __init__(self) -> None:
        self.tables: list[str] = []

    def row(self, table: str, **_: Any) -> None:
        self.tables.append(table)


class Flushes:
    """Every fake sender's flushes: which tables each touched, and how many ran at once per table."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.lock = threading.Lock()
        self.running: dict[str, int] = {}
        self.most: dict[str, int] = {}
        self.senders = 0

    def flush(self, buf: FakeBuffer) -> None:
        tables = set(buf.tables)
        with self.lock:
            for t in tables:
                self.running[t] = self.running.get(t, 0) + 1
                self.most[t] = max(self.most.get(t, 0), self.running[t])
        time.sleep(self.seconds)
        with self.lock:
            for t in tables:
                self.running[t] -= 1


class FakeSender:
    def __init__(self, flushes: Flushes) -> None:
        self.flushes = flushes

    def new_buffer(self) -> FakeBuffer:
        return FakeBuffer()

    def flush(self, buf: FakeBuffer) -> None:
        self.flushes.flush(buf)

    def close(self, flush: bool = True) -> None:
        pass


def writer(flushes: Flushes, pool: int) -> QuestDbIlpWriter:
    w = QuestDbIlpWriter("", "trades", "quotes", pool)

    def connect() -> Any:
        flushes.senders += 1
        return FakeSender(flushes)

    w._connect = connect  # type: ignore[method-assign]
    return w


def trade(i: int) -> TradeRow:
    return TradeRow("X", "prism", str(i), i, Decimal("1.5"), Decimal("2"), "buy", i, i, i)


def quote(i: int) -> QuoteRow:
    return QuoteRow("X", "prism", i, Decimal("1"), Decimal("1"), None, None, i, i, i)


async def test_concurrent_batches_flush_to_one_table_one_at_a_time_and_tables_independently() -> None:
    flushes = Flushes(seconds=0.05)
    w = writer(flushes, pool=4)
    started = time.monotonic()
    async with asyncio.timeout(5):
        await asyncio.gather(
            w.write([trade(1)], []), w.write([trade(2)], []), w.write([], [quote(1)]), w.write([], [quote(2)])
        )
    elapsed = time.monotonic() - started
    assert flushes.most == {"trades": 1, "quotes": 1}
    assert 0.1 <= elapsed < 0.35  # two flushes after each other per table; the tables side by side
    await w.close()


async def test_a_batch_cancelled_while_waiting_for_its_turn_returns_its_sender_for_the_next_batch() -> None:
    flushes = Flushes(seconds=0.1)
    w = writer(flushes, pool=2)
    first = asyncio.create_task(w.write([trade(1)], []))
    await asyncio.sleep(0.02)
    second = asyncio.create_task(w.write([trade(2)], []))
    await asyncio.sleep(0.02)
    second.cancel()
    async with asyncio.timeout(5):
        await asyncio.gather(first, second, return_exceptions=True)
        await w.write([trade(3)], [])
        await w.write([trade(4)], [])
    assert second.cancelled()
    assert flushes.senders == 2  # both senders reused: none was dropped or leaked
    await w.close()
