"""PnL by hand-checked scenarios: realized PnL of closed quantity before fees, fees (converted to the quote asset)
reducing net PnL, flips, partial fills, unrealized PnL against the quote mid, per-strategy and per-symbol
aggregates, day PnL, idempotency by fill id, snapshots and the end of the day."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.pnl.domain.ledger import PnlLedger
from services.pnl.domain.model import (
    FillRecord,
    PnlFigures,
    Side,
    Snapshot,
    SnapshotKind,
    day_start_ns,
    mid,
    trading_day,
)
from services.pnl.domain.service import PnlService
from services.runtime.errors import DomainError, ErrorKind

DAY = "2026-11-25"
T0 = day_start_ns(DAY) + 3_600 * 10**9  # 01:00 UTC
_ids = itertools.count(1)


def fill(
    side: str,
    qty: str,
    price: str,
    fee: str = "0",
    *,
    symbol: str = "BTCUSDT",
    strategy: str = "",
    fee_currency: str = "USDT",
    at: int = T0,
    account: str = "A",
) -> FillRecord:
    n = next(_ids)
    return FillRecord(f"f{n}", account, symbol, strategy, Side(side), Decimal(price), Decimal(qty), Decimal(fee),
                      fee_currency, at + n)  # fmt: skip


def total(ledger: PnlLedger, symbol: str = "", strategy: str = "", at: int = T0 + 10**9) -> PnlFigures:
    return ledger.breakdown("A", symbol, strategy, at).total


def test_buy_buy_sell_realizes_against_the_average_and_fees_reduce_net_pnl() -> None:
    ledger = PnlLedger()
    for f in (fill("buy", "1", "100", "0.1"), fill("buy", "1", "110", "0.1"), fill("sell", "1.5", "120", "0.18")):
        assert ledger.apply(f)
    t = total(ledger, "BTCUSDT")
    assert t.realized_pnl == Decimal("22.5")  # (120 - 105) x 1.5, before fees
    assert t.fees == Decimal("0.38")
    assert t.unrealized_pnl == 0 and t.mark_price is None  # no mark yet
    assert t.net_pnl == Decimal("22.12")  # realized - fees
    assert (t.position_quantity, t.currency) == (Decimal("0.5"), "USDT")


def test_unrealized_pnl_follows_the_quote_mid() -> None:
    ledger = PnlLedger()
    ledger.apply(fill("buy", "1", "100", "0.1"))
    ledger.apply(fill("buy", "1", "110", "0.1"))
    assert ledger.set_mark("BTCUSDT", mid(Decimal("114"), Decimal("116")) or Decimal(0), T0 + 5) == {"A"}
    t = total(ledger, "BTCUSDT")
    assert (t.mark_price, t.mark_time_ns) == (Decimal(115), T0 + 5)
    assert t.unrealized_pnl == Decimal(20)  # 2 x (115 - 105)
    assert t.net_pnl == Decimal("19.8")
    assert ledger.set_mark("BTCUSDT", Decimal(115), T0 + 6) == set()  # unchanged mark: nobody to tell
    assert ledger.set_mark("BTCUSDT", Decimal(90), T0 + 1) == set()  # older than the current mark: ignored
    assert total(ledger, "BTCUSDT").mark_price == Decimal(115)
    assert mid(Decimal(1), None) is None and mid(Decimal("1.01"), Decimal("1.02")) == Decimal("1.015")


def test_a_flip_realizes_the_closed_side_and_marks_the_rest_from_the_flip_price() -> None:
    ledger = PnlLedger()
    ledger.apply(fill("buy", "1", "100"))
    ledger.apply(fill("sell", "3", "90"))
    ledger.set_mark("BTCUSDT", Decimal(85), T0)
    t = total(ledger, "BTCUSDT")
    assert (t.realized_pnl, t.position_quantity, t.unrealized_pnl) == (Decimal(-10), Decimal(-2), Decimal(10))


def test_partial_fills_and_a_base_asset_fee_converted_at_the_fill_price() -> None:
    ledger = PnlLedger()
    ledger.apply(fill("buy", "0.4", "100", "0.0004", fee_currency="BTC"))  # 0.04 USDT
    ledger.apply(fill("buy", "0.6", "105", "0.063"))
    ledger.apply(fill("sell", "1", "110", "0.11"))
    t = total(ledger, "BTCUSDT")
    assert t.realized_pnl == Decimal(7)  # avg 103 -> (110 - 103) x 1
    assert t.fees == Decimal("0.213")
    assert t.net_pnl == Decimal("6.787")


def test_strategies_and_symbols_break_down_and_sum_to_the_total() -> None:
    ledger = PnlLedger()
    ledger.apply(fill("buy", "1", "100", "1", strategy="s1"))
    ledger.apply(fill("sell", "1", "110", "1", strategy="s1"))
    ledger.apply(fill("buy", "2", "50", "0.5", strategy="s2", symbol="ETHUSDT"))
    ledger.apply(fill("buy", "1", "10", symbol="ETHUSDT"))
    ledger.set_mark("ETHUSDT", Decimal(60), T0)
    view = ledger.breakdown("A", "", "", T0 + 10**9)
    assert [(p.strategy_id, p.net_pnl) for p in view.by_strategy] == [("", Decimal(50)), ("s1", Decimal(8)),
                                                                        ("s2", Decimal("19.5"))]  # fmt: skip
    assert [(p.symbol, p.net_pnl) for p in view.by_symbol] == [("BTCUSDT", Decimal(8)), ("ETHUSDT", Decimal("69.5"))]
    assert view.total.net_pnl == Decimal("77.5") and view.total.position_quantity is None
    s2 = ledger.breakdown("A", "", "s2", T0 + 10**9)
    assert s2.total.net_pnl == Decimal("19.5") and [p.symbol for p in s2.by_symbol] == ["ETHUSDT"]


def test_a_fill_id_is_applied_once() -> None:
    ledger = PnlLedger()
    f = fill("buy", "1", "100", "0.1")
    assert ledger.apply(f) and not ledger.apply(f)
    assert total(ledger).fees == Decimal("0.1") and f.fill_id in ledger


def test_day_pnl_counts_from_the_start_of_the_fills_day() -> None:
    ledger = PnlLedger()
    ledger.apply(fill("buy", "1", "100", at=T0 - 86_400 * 10**9))  # yesterday
    ledger.apply(fill("sell", "1", "110", "1"))  # today: +10 realized, 1 fee
    assert total(ledger).net_pnl == Decimal(9)
    assert total(ledger).day_net_pnl == Decimal(9)  # marked at yesterday's fill price the day started flat
    yesterday = ledger.breakdown("A", "", "", T0 - 10**9, day="2026-11-24").total
    assert yesterday.day_net_pnl == 0


class Recorder:
    def __init__(self) -> None:
        self.published: list[Snapshot] = []
        self.daily: list[Snapshot] = []
        self.fill_accounts: list[set[str]] = []
        self.mark_accounts: list[set[str]] = []

    async def publish(self, snapshots: Sequence[Snapshot]) -> None:
        self.published.extend(snapshots)

    def add(self, snapshot: Snapshot) -> None:
        self.daily.append(snapshot)

    def fills(self, accounts: set[str]) -> None:
        self.fill_accounts.append(accounts)

    def marks(self, accounts: set[str]) -> None:
        self.mark_accounts.append(accounts)


class FakeLog:
    def __init__(self, fills: list[FillRecord]) -> None:
        self.fills = fills
        self.reads: list[tuple[str, int]] = []
        self.down = False

    async def fills_of(self, account_id: str, up_to_sequence: int) -> list[FillRecord]:
        self.reads.append((account_id, up_to_sequence))
        if self.down:
            raise DomainError("DEPENDENCY_UNAVAILABLE", "nats down", ErrorKind.UNAVAILABLE)
        return [f for f in self.fills if f.account_id == account_id and f.sequence <= up_to_sequence]


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def now_ns(self) -> int:
        return self.now


async def test_the_service_publishes_an_intraday_snapshot_per_changed_account_and_closes_the_day() -> None:
    rec = Recorder()
    svc = PnlService(PnlLedger(), rec, rec, rec, Clock(T0), FakeLog([]))
    a1, a2 = fill("buy", "1", "100", "0.1"), fill("buy", "2", "10", account="B", symbol="ETHUSDT")
    snaps = await svc.handle([a1, a2, a1])
    assert [(s.account_id, s.kind, s.fill_id) for s in snaps] == [("A", SnapshotKind.INTRADAY, a1.fill_id),
                                                                 ("B", SnapshotKind.INTRADAY, a2.fill_id)]  # fmt: skip
    assert snaps[0].snapshot_id == f"A:{a1.event_time_ns}:intraday" and rec.fill_accounts == [{"A", "B"}]
    assert await svc.handle([a1]) == []  # a duplicate changes nothing and publishes nothing

    svc.on_quote("BTCUSDT", Decimal("119"), Decimal("121"), T0 + 50)
    svc.on_quote("BTCUSDT", None, Decimal("121"), T0 + 60)  # one-sided: no mark
    assert rec.mark_accounts == [{"A"}]

    (eod_a, eod_b) = await svc.end_of_day(DAY)
    assert (eod_a.kind, eod_a.trading_day, eod_a.as_of_time_ns) == (
        SnapshotKind.END_OF_DAY, DAY, day_start_ns("2026-11-26")
    )  # fmt: skip
    assert eod_a.snapshot_id == f"A:{day_start_ns('2026-11-26')}:end_of_day"
    assert eod_a.total.day_net_pnl == Decimal("19.9")  # 20 unrealized - 0.1 fee, all of it today
    assert [s.snapshot_id for s in rec.daily] == [eod_a.snapshot_id, eod_b.snapshot_id]
    next_day = svc.ledger.breakdown("A", "", "", day_start_ns("2026-11-26") + 1).total
    assert next_day.day_net_pnl == 0 and next_day.net_pnl == Decimal("19.9")
    assert trading_day(day_start_ns("2026-11-26") - 1) == DAY


def logged(fills: list[FillRecord]) -> list[FillRecord]:
    return [replace(f, sequence=n) for n, f in enumerate(fills, start=1)]


async def test_a_fill_redelivered_after_later_ones_leaves_the_pnl_a_replay_of_the_log_would_hold() -> None:
    # In log order: long 1 @ 100, closed at 120 (+20), long 1 @ 90. Applied in delivery order 1, 3, 2 it would be
    # long 2 @ 95 closed at 120 (+25).
    log = FakeLog(logged([fill("buy", "1", "100"), fill("sell", "1", "120"), fill("buy", "1", "90")]))
    other = replace(fill("buy", "1", "10", symbol="ETHUSDT"), sequence=4)
    rec = Recorder()
    svc = PnlService(PnlLedger(), rec, rec, rec, Clock(T0), log)
    await svc.handle([log.fills[0]])
    await svc.handle([log.fills[2]])
    snaps = await svc.handle([log.fills[1], other])  # the batch holding fill 2 failed; JetStream redelivered it

    t = total(svc.ledger, "BTCUSDT")
    assert (t.realized_pnl, t.position_quantity) == (Decimal(20), Decimal(1))
    assert svc.ledger.breakdown("A", "BTCUSDT", "s1", T0 + 10**9).total.unrealized_pnl == 0  # no mark
    replayed = PnlLedger()
    for f in log.fills:
        replayed.apply(f)
    assert total(replayed, "BTCUSDT") == t
    assert total(svc.ledger, "ETHUSDT").position_quantity == 1  # the other cell applied as usual
    assert log.reads == [("A", 4)] and [s.account_id for s in snaps] == ["A"]
    assert await svc.handle([log.fills[1]]) == []  # a further redelivery is a duplicate


async def test_a_log_read_failing_while_rebuilding_a_cell_applies_nothing_of_the_batch() -> None:
    log = FakeLog(logged([fill("buy", "1", "100"), fill("sell", "1", "120"), fill("buy", "1", "90")]))
    rec = Recorder()
    svc = PnlService(PnlLedger(), rec, rec, rec, Clock(T0), log)
    await svc.handle([log.fills[0]])
    await svc.handle([log.fills[2]])
    log.down = True
    with pytest.raises(DomainError):
        await svc.handle([log.fills[1]])
    assert log.fills[1].fill_id not in svc.ledger and total(svc.ledger, "BTCUSDT").position_quantity == 2


async def test_snapshot_ids_stay_unique_for_fills_at_the_same_instant() -> None:
    rec = Recorder()
    svc = PnlService(PnlLedger(), rec, rec, rec, Clock(T0), FakeLog([]))
    first = await svc.handle(
        [FillRecord("x1", "A", "BTCUSDT", "", Side.BUY, Decimal(1), Decimal(1), Decimal(0), "", T0)]
    )
    second = await svc.handle(
        [FillRecord("x2", "A", "BTCUSDT", "", Side.BUY, Decimal(1), Decimal(1), Decimal(0), "", T0)]
    )
    assert first[0].snapshot_id != second[0].snapshot_id


@given(
    st.lists(
        st.tuples(st.sampled_from(["buy", "sell"]), st.integers(1, 5000), st.integers(1, 100_000), st.integers(0, 100)),
        min_size=1,
        max_size=25,
    ),
    st.integers(1, 100_000),
)
def test_net_pnl_equals_cash_flow_plus_marked_position_minus_fees(
    trades: list[tuple[str, int, int, int]], mark_cents: int
) -> None:
    ledger = PnlLedger()
    cash = fees = position = Decimal(0)
    for side, qty_milli, price_cents, fee_cents in trades:
        f = fill(side, str(Decimal(qty_milli) / 1000), str(Decimal(price_cents) / 100), str(Decimal(fee_cents) / 100))
        ledger.apply(f)
        cash -= f.signed_quantity * f.price
        fees += f.fee
        position += f.signed_quantity
    mark = Decimal(mark_cents) / 100
    ledger.set_mark("BTCUSDT", mark, T0 + 10**6)
    t = total(ledger, "BTCUSDT")
    assert abs(t.net_pnl - (cash + position * mark - fees)) < Decimal("1e-9")
    assert t.position_quantity == position
