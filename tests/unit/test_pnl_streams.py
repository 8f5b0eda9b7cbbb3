"""The pnl servicer and adapters without servers: StreamPnl sends a snapshot, then fill-driven updates at once and
mark-driven ones throttled; daily snapshots page newest first; the end-of-day scheduler closes the right day;
quotes decode to marks."""

from __future__ import annotations

import asyncio
import itertools
import time
from decimal import Decimal
from typing import Any, cast

import pytest
from trade.normalizer.v1 import events_pb2 as md_events_pb2
from trade.pnl.v1 import events_pb2, pnl_pb2
from trade.type.v1 import decimal_pb2, market_data_pb2

from services.pnl.adapters.codec import decode_quotes
from services.pnl.adapters.daily import DailySnapshotStore
from services.pnl.adapters.hub import PnlHub
from services.pnl.adapters.marks import QuoteMarks
from services.pnl.adapters.scheduler import EndOfDayScheduler
from services.pnl.domain.ledger import PnlLedger
from services.pnl.domain.model import FillRecord, Side, Snapshot, day_start_ns
from services.pnl.domain.service import PnlService
from services.pnl.servicer import PnlServicer
from services.runtime.errors import DomainError, ErrorKind
from tests.support.marketdata import md_message


class NoLog:
    async def fills_of(self, account_id: str, up_to_sequence: int) -> list[FillRecord]:
        raise AssertionError("these fills arrive in order: nothing to rebuild")


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def now_ns(self) -> int:
        return self.now


class NullPublisher:
    async def publish(self, snapshots: object) -> None:
        return None


class Context:
    def __init__(self) -> None:
        self.sent: list[tuple[float, pnl_pb2.StreamPnlResponse]] = []

    async def write(self, message: pnl_pb2.StreamPnlResponse) -> None:
        self.sent.append((time.monotonic(), message))


def fill(n: int, side: str = "buy", price: str = "100") -> FillRecord:
    return FillRecord(f"f{n}", "A", "BTCUSDT", "s1", Side(side), Decimal(price), Decimal(1), Decimal("0.1"), "USDT",
                      time.time_ns())  # fmt: skip


def setup(floor_ms: int = 50, heartbeat_s: float = 5.0) -> tuple[PnlService, PnlServicer, DailySnapshotStore]:
    hub, daily = PnlHub(), DailySnapshotStore()
    service = PnlService(PnlLedger(), NullPublisher(), daily, hub, Clock(time.time_ns()), NoLog())
    service.replay([])
    return service, PnlServicer(service, hub, daily, floor_ms, heartbeat_s), daily


async def test_stream_sends_a_snapshot_then_fills_at_once_and_marks_throttled() -> None:
    service, servicer, _ = setup()
    await service.handle([fill(1)])
    ctx = Context()
    request = pnl_pb2.StreamPnlRequest(account_id="A", min_interval_ms=100)
    task = asyncio.create_task(servicer.StreamPnl(request, ctx))  # type: ignore[arg-type]
    try:
        await asyncio.sleep(0.05)
        assert len(ctx.sent) == 1 and ctx.sent[0][1].snapshot.total.fees.value == "0.1"
        started = time.monotonic()
        await service.handle([fill(2, "sell", "110")])
        await asyncio.sleep(0.02)
        assert len(ctx.sent) == 2  # the fill went out at once
        assert ctx.sent[1][1].snapshot.total.realized_pnl.value == "10"  # bought at 100, sold at 110
        service.ledger.apply(fill(3))  # reopen a position so marks move PnL
        marking = time.monotonic()
        for i in range(40):  # 400 ms of marks every 10 ms
            service.on_quote("BTCUSDT", Decimal(100 + i), Decimal(101 + i), time.time_ns())
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.12)
        mark_updates = [t for t, m in ctx.sent[2:] if m.HasField("snapshot")]
        # At most one per 100 ms (the requested interval) however many marks arrived, and at least two.
        assert 2 <= len(mark_updates) <= (time.monotonic() - marking) / 0.1 + 1
        gaps = [b - a for a, b in itertools.pairwise(mark_updates)]
        assert all(gap >= 0.09 for gap in gaps)
        last = ctx.sent[-1][1].snapshot
        assert last.by_symbol[0].mark_price.value == "139.5" and time.monotonic() - started < 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_an_idle_stream_sends_heartbeats() -> None:
    _, servicer, _ = setup(heartbeat_s=0.05)
    ctx = Context()
    task = asyncio.create_task(servicer.StreamPnl(pnl_pb2.StreamPnlRequest(account_id="A"), ctx))  # type: ignore[arg-type]
    await asyncio.sleep(0.18)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert ctx.sent[0][1].HasField("snapshot")
    assert 2 <= sum(1 for _, m in ctx.sent if m.HasField("heartbeat")) <= 4


def eod(day: str) -> events_pb2.PnlSnapshot:
    return events_pb2.PnlSnapshot(
        snapshot_id=f"A:{day}:end_of_day", kind=events_pb2.PNL_SNAPSHOT_KIND_END_OF_DAY, account_id="A", trading_day=day
    )


async def test_daily_snapshots_page_newest_first_within_the_range_and_reject_bad_input() -> None:
    _, servicer, daily = setup()
    for day in ("2026-11-20", "2026-11-21", "2026-11-22", "2026-11-23"):
        assert daily.add_pb(eod(day))
    assert not daily.add_pb(events_pb2.PnlSnapshot(kind=events_pb2.PNL_SNAPSHOT_KIND_INTRADAY, account_id="A"))
    ctx: Any = None
    request = pnl_pb2.ListDailySnapshotsRequest(account_id="A", start_day="2026-11-21", page_size=2)
    first = await servicer.ListDailySnapshots(request, ctx)
    request.page_token = first.next_page_token
    rest = await servicer.ListDailySnapshots(request, ctx)
    assert [s.trading_day for s in first.snapshots] == ["2026-11-23", "2026-11-22"]
    assert [s.trading_day for s in rest.snapshots] == ["2026-11-21"] and rest.next_page_token == ""
    for bad in (
        pnl_pb2.ListDailySnapshotsRequest(account_id="A", start_day="2026-13-01"),
        pnl_pb2.ListDailySnapshotsRequest(account_id="A", start_day="2026-11-22", end_day="2026-11-21"),
        pnl_pb2.ListDailySnapshotsRequest(account_id="A", page_token="nope"),
        pnl_pb2.ListDailySnapshotsRequest(account_id="bad account"),
    ):
        with pytest.raises(DomainError) as err:
            await servicer.ListDailySnapshots(bad, ctx)
        assert err.value.kind is ErrorKind.INVALID_ARGUMENT
    with pytest.raises(DomainError):
        await servicer.GetPnl(pnl_pb2.GetPnlRequest(account_id="A", symbol="BAD SYMBOL"), ctx)


async def test_get_pnl_returns_total_and_breakdowns() -> None:
    service, servicer, _ = setup()
    await service.handle([fill(1), fill(2, "sell", "110")])
    got = await servicer.GetPnl(pnl_pb2.GetPnlRequest(account_id="A"), None)  # type: ignore[arg-type]
    assert (got.total.realized_pnl.value, got.total.fees.value, got.total.net_pnl.value) == ("10", "0.2", "9.8")
    assert [p.strategy_id for p in got.by_strategy] == ["s1"] and [p.symbol for p in got.by_symbol] == ["BTCUSDT"]
    assert not got.total.HasField("position_quantity") and got.by_symbol[0].position_quantity.value == "0"


async def test_the_scheduler_closes_the_day_that_ended_at_midnight() -> None:
    day = "2026-11-25"
    clock = Clock(day_start_ns(day) + 86_400 * 10**9 - 10**9)  # 23:59:59
    closed: list[str] = []

    class Service:
        async def end_of_day(self, d: str) -> list[Snapshot]:
            closed.append(d)
            if len(closed) == 1:
                raise ConnectionError("nats down")  # retried
            return []

    async def sleep(seconds: float) -> None:
        clock.now += int(seconds * 1e9) + 1

    scheduler = EndOfDayScheduler(Service(), clock, sleep)  # type: ignore[arg-type]
    assert await scheduler.run_once() == day
    assert closed == [day, day]


def _quote(seq: int, bid: str, ask: str = "", symbol: str = "X") -> md_events_pb2.MarketDataEvent:
    quote = market_data_pb2.Quote(symbol=symbol, bid_price=decimal_pb2.Decimal(value=bid), event_time_ns=seq)
    if ask:
        quote.ask_price.value = ask
    return md_events_pb2.MarketDataEvent(event_id=f"quote:{symbol}:{seq}", quote=quote)


def test_the_quotes_of_an_md_message_decode_in_order_and_garbage_to_nothing() -> None:
    trade = md_events_pb2.MarketDataEvent(trade=market_data_pb2.Trade(symbol="X"))
    assert decode_quotes(md_message(_quote(7, "1.5"), trade, _quote(8, "2", "3"))) == [
        ("X", Decimal("1.5"), None, 7),
        ("X", Decimal("2"), Decimal("3"), 8),
    ]
    assert decode_quotes(b"\xff\xff") is None
    assert decode_quotes(md_message(trade)) == []


def test_a_mark_takes_the_last_two_sided_quote_of_a_message_and_malformed_messages_are_counted() -> None:
    marked: list[tuple[str, Decimal | None, Decimal | None, int]] = []

    class Service:
        def on_quote(self, symbol: str, bid: Decimal | None, ask: Decimal | None, time_ns: int) -> None:
            marked.append((symbol, bid, ask, time_ns))

    marks = QuoteMarks(cast(Any, None), cast(Any, Service()), "md.quote.>", "MD", "md.quote")
    marks._apply(md_message(_quote(1, "10", "12"), _quote(2, "20", "22"), _quote(3, "30")))  # 3: one-sided
    assert marked == [("X", Decimal(20), Decimal(22), 2)]
    marks._apply(b"\xff\xff")
    marks._apply(md_message(_quote(4, "1")))  # no mid: no mark
    assert len(marked) == 1 and marks.malformed == 1 and marks.quotes == 4
