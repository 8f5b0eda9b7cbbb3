"""Slow subscribers: bounded queues conflate quotes, drop the oldest trades, turn book overflow into a snapshot."""

from __future__ import annotations

from dataclasses import dataclass

from services.marketdata.domain.book import Delta
from services.marketdata.domain.hub import MarketData, QueueLimits
from services.marketdata.domain.queues import BookQueue, ConflatingQueue, DropOldestQueue


@dataclass(frozen=True)
class Tick:
    symbol: str
    n: int


def test_quotes_conflate_to_the_latest_per_symbol_and_count_what_was_replaced() -> None:
    q: ConflatingQueue[str, Tick] = ConflatingQueue(lambda t: t.symbol, capacity=16)
    for n in range(1000):
        q.put(Tick("BTCUSDT", n))
        q.put(Tick("ETHUSDT", n))
    assert len(q) == 2
    assert q.conflated == 1998 and q.dropped == 0
    assert q.drain() == [Tick("BTCUSDT", 999), Tick("ETHUSDT", 999)]


def test_trades_drop_the_oldest_when_the_bounded_queue_is_full() -> None:
    q: DropOldestQueue[int] = DropOldestQueue(capacity=100)
    for n in range(10_000):
        q.put(n)
    assert len(q) == 100 and q.dropped == 9_900
    assert q.drain() == list(range(9_900, 10_000))


def test_book_delta_overflow_discards_the_queue_and_asks_for_a_snapshot() -> None:
    q: BookQueue[Delta] = BookQueue(capacity=4)
    q.put(Delta(1, 0, (), ()))
    assert len(q) == 0 and q.conflated == 0  # nothing counts before the first snapshot
    q.snapshot_sent()
    for n in range(2, 7):
        q.put(Delta(n, n - 1, (), ()))
    assert q.needs_snapshot and len(q) == 0 and q.conflated == 5
    q.put(Delta(7, 6, (), ()))
    assert q.conflated == 6


def test_a_slow_subscriber_costs_bounded_memory_while_a_fast_one_misses_nothing() -> None:
    md: MarketData[Tick] = MarketData(lambda t: t.symbol, QueueLimits(quotes=8, trades=50, book_deltas=50))
    slow = md.trades.subscribe([])
    fast = md.trades.subscribe(["BTCUSDT"])
    seen: list[Tick] = []
    for n in range(5_000):
        md.on_trade(Tick("BTCUSDT", n))
        seen += fast.queue.drain()
    assert len(seen) == 5_000 and fast.queue.dropped == 0
    assert len(slow.queue) == 50 and slow.queue.dropped == 4_950
    md.trades.unsubscribe(slow)
    md.trades.unsubscribe(fast)
    assert md.subscriber_counts()["trades"] == 0


def test_a_new_quote_subscriber_starts_with_the_latest_quote_of_each_symbol() -> None:
    md: MarketData[Tick] = MarketData(lambda t: t.symbol)
    md.on_quote(Tick("BTCUSDT", 1))
    md.on_quote(Tick("BTCUSDT", 2))
    md.on_quote(Tick("SOLUSDT", 1))
    sub = md.subscribe_quotes(["BTCUSDT"])
    assert sub.queue.drain() == [Tick("BTCUSDT", 2)]
