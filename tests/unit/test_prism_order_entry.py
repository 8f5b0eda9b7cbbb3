"""PRISM member order entry (domain and service layer, no servers): member orders trade in the same books as the
synthetic participants, every order type ends in the right executions, fees are maker/taker, retries are
idempotent, self-trade prevention works per account, the execution log replays, and the same seed and commands
give the same executions."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trade.prism.v1 import execution_pb2
from trade.type.v1 import errors_pb2, fill_pb2, order_pb2

from services.prism.domain.engine import MatchingEngine
from services.prism.domain.events import TRADE, Event
from services.prism.domain.feed import FeedMessage, TradePrint
from services.prism.domain.instruments import DEFAULT_INSTRUMENTS
from services.prism.domain.members import (
    ExecType,
    Execution,
    ExecutionLog,
    Liquidity,
    MemberDesk,
    OrderRequest,
    OrderStatus,
    PlaceResult,
    PreparedOrder,
)
from services.prism.domain.orders import BUY, FOK, GTC, GTD, IOC, LIMIT, MARKET, SELL, STOP, STOP_LIMIT, Side
from services.prism.domain.participants import Simulation, SimulationConfig
from services.prism.order_entry import OrderEntry
from services.prism.runner import SimulationRunner
from services.prism.servicer import execution_pb
from services.runtime.errors import DomainError, ErrorKind

BTC = DEFAULT_INSTRUMENTS[0]
PARTICIPANT = 1_000_000
NOW = 1_000


def req(
    account: str = "A1",
    coid: str = "c1",
    side: int = BUY,
    qty: str = "0.1",
    price: str | None = "60000",
    otype: int = LIMIT,
    tif: int = 0,
    stop: str | None = None,
    symbol: str = "BTCUSDT",
    expire: int = 0,
    post_only: bool = False,
) -> OrderRequest:
    return OrderRequest(account, symbol, coid, side, otype, qty, price, stop, tif, expire, post_only)


def place(desk: MemberDesk, now: int = NOW, **kw: object) -> PlaceResult:
    prepared = desk.prepare(req(**kw))  # type: ignore[arg-type]
    assert isinstance(prepared, PreparedOrder)
    return desk.place(prepared, now)


def participant(
    engine: MatchingEngine, desk: MemberDesk, side: int, qty: str, price: str | None, owner: int = PARTICIPANT
) -> int:
    """An order of a synthetic participant, entered the way the simulation enters it."""
    oid = engine.submit("BTCUSDT", owner, side, BTC.qty(qty), BTC.price(price) if price else 0,
                        LIMIT if price else MARKET, GTC if price else IOC)  # fmt: skip
    desk.pump(NOW)
    return oid


def new_desk() -> tuple[MatchingEngine, MemberDesk]:
    engine = MatchingEngine([BTC])
    return engine, MemberDesk(engine)


def types(executions: Sequence[Execution]) -> list[ExecType]:
    return [e.type for e in executions]


def error(exc: pytest.ExceptionInfo[DomainError]) -> tuple[ErrorKind, str, list[str]]:
    return exc.value.kind, exc.value.reason, [v.field for v in exc.value.violations]


# --- order types, fills and fees ---------------------------------------------------------------------------------


def test_marketable_limit_order_takes_participant_liquidity_and_pays_the_taker_fee() -> None:
    engine, desk = new_desk()
    maker = participant(engine, desk, SELL, "0.5", "60000")
    result = place(desk, qty="0.2", price="60000.05")
    assert result.status == OrderStatus.FILLED and result.venue_order_id and not result.replayed
    assert types(result.executions) == [ExecType.NEW, ExecType.TRADE]
    trade = result.executions[1]
    assert (trade.last_price, trade.last_qty, trade.liquidity) == (Decimal("60000"), Decimal("0.2"), Liquidity.TAKER)
    assert trade.fee == Decimal("6") and trade.fee_currency == "USDT"  # 12000 USDT x 500 ppm
    assert (trade.cum_qty, trade.leaves_qty, trade.order_status) == (Decimal("0.2"), Decimal("0"), OrderStatus.FILLED)
    view = engine.order(maker)
    assert view is not None and view.leaves_qty == BTC.qty("0.3")  # the participant keeps the rest


def test_resting_member_order_hit_by_a_participant_is_a_maker_fill_at_the_maker_fee() -> None:
    engine, desk = new_desk()
    result = place(desk, side=SELL, qty="0.2", price="60000")
    assert result.status == OrderStatus.NEW and types(result.executions) == [ExecType.NEW]
    participant(engine, desk, BUY, "0.05", None)
    trade = desk.log.history("A1")[-1]
    assert trade.type == ExecType.TRADE and trade.liquidity == Liquidity.MAKER
    assert trade.fee == Decimal("0.3")  # 3000 USDT x 100 ppm
    assert trade.order_status == OrderStatus.PARTIALLY_FILLED and trade.leaves_qty == Decimal("0.15")
    assert trade.trade_id == "1"


def test_partial_fills_keep_cum_plus_leaves_equal_to_the_quantity() -> None:
    engine, desk = new_desk()
    for price in ("60000", "60000.01", "60000.02"):
        participant(engine, desk, SELL, "0.1", price)
    result = place(desk, qty="0.25", price="60000.01")
    trades = [e for e in result.executions if e.type == ExecType.TRADE]
    assert [e.last_price for e in trades] == [Decimal("60000"), Decimal("60000.01")]
    assert all(e.cum_qty + e.leaves_qty == Decimal("0.25") for e in result.executions)
    assert result.status == OrderStatus.PARTIALLY_FILLED and trades[-1].leaves_qty == Decimal("0.05")
    assert engine.top_of_book("BTCUSDT").bid_price == BTC.price("60000.01")  # the remainder rests


def test_market_order_without_liquidity_expires_with_reason_no_liquidity() -> None:
    _, desk = new_desk()
    result = place(desk, otype=MARKET, price=None)
    assert result.status == OrderStatus.EXPIRED
    assert types(result.executions) == [ExecType.NEW, ExecType.EXPIRED]
    assert result.executions[-1].reason == "NO_LIQUIDITY" and result.executions[-1].leaves_qty == 0


def test_ioc_remainder_expires_after_the_fill_and_fok_expires_untouched() -> None:
    engine, desk = new_desk()
    participant(engine, desk, SELL, "0.1", "60000")
    ioc = place(desk, coid="ioc", qty="0.3", price="60000", tif=IOC)
    assert types(ioc.executions) == [ExecType.NEW, ExecType.TRADE, ExecType.EXPIRED]
    assert ioc.status == OrderStatus.EXPIRED and ioc.executions[-1].text == "IOC_REMAINDER"
    assert ioc.executions[-1].cum_qty == Decimal("0.1")
    participant(engine, desk, SELL, "0.1", "60000")
    fok = place(desk, coid="fok", qty="0.3", price="60000", tif=FOK)
    assert types(fok.executions) == [ExecType.NEW, ExecType.EXPIRED] and fok.executions[-1].text == "FOK_NOT_FILLABLE"
    assert engine.book("BTCUSDT").best_ask() == BTC.price("60000")  # the FOK took nothing


def test_stop_and_stop_limit_orders_trigger_on_the_last_trade_price() -> None:
    engine, desk = new_desk()
    stop = place(desk, coid="stop", otype=STOP, price=None, stop="60010", qty="0.01")
    stop_limit = place(desk, coid="sl", otype=STOP_LIMIT, price="60020", stop="60010", qty="0.01")
    assert stop.status == stop_limit.status == OrderStatus.NEW
    participant(engine, desk, SELL, "1", "60010")
    participant(engine, desk, BUY, "0.01", None, PARTICIPANT + 1)  # prints at 60010: both stops trigger and buy
    history = desk.log.history("A1")
    for venue_id in (stop.venue_order_id, stop_limit.venue_order_id):
        mine = [e for e in history if e.venue_order_id == venue_id]
        assert types(mine) == [ExecType.NEW, ExecType.TRIGGERED, ExecType.TRADE]
        assert mine[-1].order_status == OrderStatus.FILLED and mine[-1].last_price == Decimal("60010")


def test_gtd_order_expires_when_the_engine_clock_passes_its_expiry() -> None:
    engine, desk = new_desk()
    result = place(desk, tif=GTD, expire=NOW + 500)
    assert result.status == OrderStatus.NEW
    engine.advance(NOW + 500)
    (expired,) = desk.pump(NOW + 500)
    assert (expired.type, expired.text, expired.order_status) == (ExecType.EXPIRED, "GTD_EXPIRED", OrderStatus.EXPIRED)
    assert engine.top_of_book("BTCUSDT").bid_price == 0


def test_post_only_order_that_would_take_is_rejected() -> None:
    engine, desk = new_desk()
    participant(engine, desk, SELL, "0.1", "60000")
    result = place(desk, price="60000", post_only=True)
    assert result.status == OrderStatus.REJECTED and types(result.executions) == [ExecType.REJECTED]
    assert result.executions[0].reason == "POST_ONLY_WOULD_TAKE"
    assert place(desk, coid="c2", price="59999.99", post_only=True).status == OrderStatus.NEW


def test_self_trade_prevention_cancels_the_incoming_order_of_the_same_account_only() -> None:
    _, desk = new_desk()
    place(desk, coid="ask", side=SELL, price="60000")
    same = place(desk, coid="bid", side=BUY, price="60000")
    assert types(same.executions) == [ExecType.NEW, ExecType.CANCELED]
    assert same.status == OrderStatus.CANCELED and same.executions[-1].text == "SELF_TRADE_PREVENTION"
    other = place(desk, account="B2", coid="bid", side=BUY, price="60000")
    assert other.status == OrderStatus.FILLED
    maker = desk.log.history("A1")[-1]  # members trade with each other too: the resting ask is filled as maker
    assert (maker.type, maker.liquidity, maker.order_status) == (ExecType.TRADE, Liquidity.MAKER, OrderStatus.FILLED)


# --- validation -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "reason", "fields"),
    [
        ({"price": "60000.001"}, "INVALID_TICK_SIZE", ["spec.limit_price"]),
        ({"qty": "0.000001"}, "INVALID_LOT_SIZE", ["spec.quantity"]),
        ({"qty": "0.00001", "price": "100"}, "BELOW_MIN_NOTIONAL", ["spec.quantity"]),
        ({"qty": "1e-3"}, "VALIDATION_FAILED", ["spec.quantity"]),
        ({"qty": "-1"}, "VALIDATION_FAILED", ["spec.quantity"]),
        ({"otype": MARKET, "price": "60000"}, "VALIDATION_FAILED", ["spec.limit_price"]),
        ({"otype": LIMIT, "price": None}, "VALIDATION_FAILED", ["spec.limit_price"]),
        ({"otype": STOP, "price": None}, "VALIDATION_FAILED", ["spec.stop_price"]),
        ({"otype": MARKET, "price": None, "tif": GTC}, "VALIDATION_FAILED", ["spec.time_in_force"]),
        ({"tif": GTD}, "VALIDATION_FAILED", ["spec.expire_time_ns"]),
        ({"tif": IOC, "post_only": True}, "VALIDATION_FAILED", ["spec.post_only"]),
        ({"side": 0}, "VALIDATION_FAILED", ["spec.side"]),
        ({"account": "bad account"}, "VALIDATION_FAILED", ["account_id"]),
        ({"coid": ""}, "VALIDATION_FAILED", ["client_order_id"]),
        ({"price": "60000.001", "qty": "0.000001"}, "VALIDATION_FAILED", ["spec.quantity", "spec.limit_price"]),
    ],
)
def test_invalid_orders_are_invalid_argument_with_field_violations(
    kwargs: dict[str, object], reason: str, fields: list[str]
) -> None:
    _, desk = new_desk()
    with pytest.raises(DomainError) as exc:
        desk.prepare(req(**kwargs))  # type: ignore[arg-type]
    assert error(exc) == (ErrorKind.INVALID_ARGUMENT, reason, fields)


def test_unknown_symbol_is_not_found() -> None:
    _, desk = new_desk()
    with pytest.raises(DomainError) as exc:
        desk.prepare(req(symbol="NOPEUSDT"))
    assert error(exc) == (ErrorKind.NOT_FOUND, "UNKNOWN_SYMBOL", [])


# --- idempotency, cancel, amend -------------------------------------------------------------------------------------


def test_retry_of_a_client_order_id_returns_the_original_order_and_a_different_spec_is_already_exists() -> None:
    engine, desk = new_desk()
    first = place(desk, price="59000")
    retry = desk.prepare(req(price="59000.00", tif=GTC))  # numerically the same order, GTC spelled out
    assert isinstance(retry, PlaceResult) and retry.replayed
    assert (retry.venue_order_id, retry.executions) == (first.venue_order_id, first.executions)
    assert engine.open_orders == 1 and len(desk.log.history("A1")) == 1
    with pytest.raises(DomainError) as exc:
        desk.prepare(req(price="59000.01"))
    assert error(exc) == (ErrorKind.ALREADY_EXISTS, "DUPLICATE_CLIENT_ORDER_ID_MISMATCH", [])
    assert isinstance(desk.prepare(req(account="B2", price="59000.01")), PreparedOrder)  # the key is per account


def test_cancel_by_either_id_then_too_late_and_unknown_orders() -> None:
    engine, desk = new_desk()
    a = place(desk, coid="a", price="59000")
    place(desk, coid="b", price="59000")
    canceled = desk.cancel("A1", a.venue_order_id, "", NOW)
    assert (canceled.type, canceled.order_status, canceled.leaves_qty) == (
        ExecType.CANCELED,
        OrderStatus.CANCELED,
        Decimal(0),
    )
    assert desk.cancel("A1", "", "b", NOW).type == ExecType.CANCELED
    assert engine.open_orders == 0 and engine.top_of_book("BTCUSDT").bid_price == 0
    with pytest.raises(DomainError) as exc:
        desk.cancel("A1", a.venue_order_id, "", NOW)
    assert error(exc) == (ErrorKind.FAILED_PRECONDITION, "TOO_LATE_TO_CANCEL", [])
    rejected = desk.log.history("A1")[-1]
    assert (rejected.type, rejected.reason) == (ExecType.CANCEL_REJECTED, "TOO_LATE_TO_CANCEL")
    for account, venue_id in (("A1", "P999"), ("B2", a.venue_order_id)):
        with pytest.raises(DomainError) as exc:
            desk.cancel(account, venue_id, "", NOW)
        assert error(exc) == (ErrorKind.NOT_FOUND, "ORDER_NOT_FOUND", [])
    with pytest.raises(DomainError) as exc:
        desk.cancel("A1", a.venue_order_id, "a", NOW)
    assert error(exc)[0] == ErrorKind.INVALID_ARGUMENT


def test_amend_down_keeps_priority_and_a_price_change_loses_it() -> None:
    engine, desk = new_desk()
    first = place(desk, coid="first", price="59000", qty="0.2")
    second = place(desk, account="B2", coid="second", price="59000", qty="0.2")
    (down,) = desk.amend("A1", "BTCUSDT", first.venue_order_id, "0.1", None, NOW)
    assert (down.type, down.leaves_qty, down.order_status) == (ExecType.REPLACED, Decimal("0.1"), OrderStatus.NEW)
    assert "priority=kept" in down.text
    participant(engine, desk, SELL, "0.1", None)
    assert desk.log.history("A1")[-1].order_status == OrderStatus.FILLED  # still first in the queue
    (moved,) = desk.amend("B2", "BTCUSDT", second.venue_order_id, None, "58999", NOW)
    assert "priority=lost" in moved.text
    assert engine.top_of_book("BTCUSDT").bid_price == BTC.price("58999")


def test_amend_that_crosses_trades_on_reentry_and_amending_a_done_order_is_too_late() -> None:
    engine, desk = new_desk()
    participant(engine, desk, SELL, "0.1", "60000")
    order = place(desk, price="59000", qty="0.1")
    execs = desk.amend("A1", "BTCUSDT", order.venue_order_id, None, "60000", NOW)
    assert types(execs) == [ExecType.REPLACED, ExecType.TRADE]
    assert execs[-1].liquidity == Liquidity.TAKER and execs[-1].order_status == OrderStatus.FILLED
    with pytest.raises(DomainError) as exc:
        desk.amend("A1", "BTCUSDT", order.venue_order_id, "0.2", None, NOW)
    assert error(exc) == (ErrorKind.FAILED_PRECONDITION, "TOO_LATE_TO_AMEND", [])
    assert desk.log.history("A1")[-1].type == ExecType.REPLACE_REJECTED


def test_amend_below_the_filled_quantity_is_too_late_and_bad_values_are_invalid() -> None:
    engine, desk = new_desk()
    order = place(desk, side=SELL, price="60000", qty="0.2")
    participant(engine, desk, BUY, "0.1", None)
    with pytest.raises(DomainError) as exc:
        desk.amend("A1", "BTCUSDT", order.venue_order_id, "0.1", None, NOW)
    assert error(exc) == (ErrorKind.FAILED_PRECONDITION, "TOO_LATE_TO_AMEND", [])
    with pytest.raises(DomainError) as exc:
        desk.amend("A1", "BTCUSDT", order.venue_order_id, None, "60000.001", NOW)
    assert error(exc) == (ErrorKind.INVALID_ARGUMENT, "INVALID_TICK_SIZE", ["new_limit_price"])
    with pytest.raises(DomainError) as exc:
        desk.amend("A1", "BTCUSDT", order.venue_order_id, None, None, NOW)
    assert error(exc)[0] == ErrorKind.INVALID_ARGUMENT
    with pytest.raises(DomainError) as exc:
        desk.amend("A1", "ETHUSDT", order.venue_order_id, "0.3", None, NOW)
    assert error(exc)[0] == ErrorKind.NOT_FOUND  # ETHUSDT has no book in this engine
    (up,) = desk.amend("A1", "BTCUSDT", order.venue_order_id, "0.3", None, NOW)
    assert (up.cum_qty, up.leaves_qty, up.order_status) == (
        Decimal("0.1"),
        Decimal("0.2"),
        OrderStatus.PARTIALLY_FILLED,
    )


# --- execution log ----------------------------------------------------------------------------------------------------


def test_exec_sequences_are_engine_wide_increasing_and_replay_starts_after_the_given_one() -> None:
    engine = MatchingEngine([BTC])
    desk = MemberDesk(engine, first_sequence=5_000)
    a = place(desk, price="59000")
    b = place(desk, account="B2", price="59000")
    seqs = [e.exec_sequence for e in desk.log.history("A1")] + [e.exec_sequence for e in desk.log.history("B2")]
    assert seqs == [5_001, 5_002] and a.venue_order_id == "P5001" and b.venue_order_id == "P5002"
    desk.cancel("A1", a.venue_order_id, "", NOW)
    assert [e.type for e in desk.log.replay("A1", 5_001)] == [ExecType.CANCELED]
    assert desk.log.replay("A1", 5_003) == [] and desk.log.history("A1")[0].exec_id == "E5001"


def test_retention_keeps_the_newest_executions_per_account_and_reports_what_was_dropped() -> None:
    log = ExecutionLog(retention_per_account=10)
    engine = MatchingEngine([BTC])
    desk = MemberDesk(engine, log)
    for i in range(40):
        place(desk, coid=f"c{i}", price="59000")
    history = log.history("A1")
    assert 10 <= len(history) <= 11 and history[-1].exec_sequence == 40
    assert log.replay("A1", 35) == list(history[-5:])
    assert log.dropped_after("A1", 35) == 0 and log.dropped_after("A1", 0) == 40 - len(history)


# --- the running simulation ------------------------------------------------------------------------------------------


class ListSink:
    def __init__(self) -> None:
        self.messages: list[FeedMessage] = []

    async def publish(self, messages: Sequence[FeedMessage]) -> None:
        self.messages += messages


def _runner(sink: ListSink, seed: int = 4, first_exec_sequence: int = 0) -> SimulationRunner:
    return SimulationRunner(
        instruments=DEFAULT_INSTRUMENTS, config=SimulationConfig(seed=seed), sink=sink, message_rate=200,
        warmup_steps=500, clock=lambda: 1_000_000_000, first_exec_sequence=first_exec_sequence,
    )  # fmt: skip


def test_member_trades_reach_the_feed_in_sequence_and_a_reseed_cancels_member_orders() -> None:
    sink = ListSink()
    runner = _runner(sink)
    asyncio.run(runner.tick(0.1))
    desk = runner.desk
    ask = runner.engine.book("BTCUSDT").best_ask()
    result = place(desk, qty="0.01", price=str(BTC.price_decimal(ask)), now=1_000_000_000)
    trade_ids = {int(e.trade_id) for e in result.executions if e.type == ExecType.TRADE}
    resting = place(desk, coid="rest", price="1000", qty="0.01", now=1_000_000_000)
    assert trade_ids and resting.status == OrderStatus.NEW
    asyncio.run(runner.tick(0.1))
    prints = {m.body.trade_id for m in sink.messages if m.symbol == "BTCUSDT" and isinstance(m.body, TradePrint)}
    assert trade_ids <= prints
    seqs = [m.sequence for m in sink.messages if m.symbol == "BTCUSDT"]
    assert seqs == list(range(1, len(seqs) + 1))
    asyncio.run(runner.configure(seed=9))
    last = desk.log.history("A1")[-1]
    assert (last.venue_order_id, last.type, last.text) == (
        resting.venue_order_id,
        ExecType.CANCELED,
        "SIMULATION_RESET",
    )
    assert (
        place(desk, coid="after", price="1000", qty="0.01").status == OrderStatus.NEW
    )  # the desk serves the new engine


def _session(seed: int) -> tuple[list[Execution], list[Event]]:
    """Participants and members interleaved by a fixed script."""
    engine = MatchingEngine(DEFAULT_INSTRUMENTS)
    desk = MemberDesk(engine)
    sim = Simulation(engine, SimulationConfig(seed=seed))
    sim.run(300)
    desk.pump(0)
    for i in range(60):
        sim.run(7)
        desk.pump(i)
        book = engine.book("ETHUSDT")
        mid = (book.best_bid() + book.best_ask()) // 2 or BTC.price("3000")
        side = BUY if i % 2 else SELL
        price = book.instrument.price_decimal(mid + (3 if side == BUY else -3) * (i % 4))
        prepared = desk.prepare(req(account=f"M{i % 3}", coid=f"o{i}", side=side, qty="0.01", price=str(price),
                                    symbol="ETHUSDT", tif=IOC if i % 5 == 0 else 0))  # fmt: skip
        assert isinstance(prepared, PreparedOrder)
        desk.place(prepared, i)
        if i % 7 == 3:
            victim = desk.order(f"M{i % 3}", client_order_id=f"o{i - 2}")
            if victim is not None and not victim.done:
                desk.cancel(victim.account_id, victim.venue_order_id, "", i)
    execs = [e for a in ("M0", "M1", "M2") for e in desk.log.history(a)]
    return sorted(execs, key=lambda e: e.exec_sequence), desk.take_outbox()


def test_same_seed_and_commands_give_identical_executions_and_feed_events() -> None:
    a, b, c = _session(11), _session(11), _session(12)
    assert a == b and a != c
    assert sum(1 for e in a[0] if e.type == ExecType.TRADE) > 5


MemberCmd = tuple[str, int, int, int, tuple[int, int], int]
member_cmd = st.tuples(
    st.sampled_from(["M0", "M1", "M2"]),
    st.sampled_from([BUY, SELL]),
    st.integers(3, 30),  # x 0.05 SOL: >= 5 USDT notional even at half the price (the mid of a one-sided book)
    st.integers(-6, 6),  # ticks from the mid
    st.sampled_from([(LIMIT, GTC), (LIMIT, IOC), (LIMIT, FOK), (MARKET, IOC)]),
    st.integers(0, 6),  # participant steps before it
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(member_cmd, min_size=1, max_size=40), st.integers(1, 1000))
def test_bought_equals_sold_and_member_fills_add_up(
    cmds: list[tuple[str, int, int, int, tuple[int, int], int]], seed: int
) -> None:
    engine = MatchingEngine(DEFAULT_INSTRUMENTS)
    desk = MemberDesk(engine)
    sim = Simulation(engine, SimulationConfig(seed=seed))
    sim.run(100)
    events: list[Event] = []
    for i, (account, side, lots, offset, (otype, tif), steps) in enumerate(cmds):
        sim.run(int(steps))
        desk.pump(i)
        book = engine.book("SOLUSDT")
        mid = (book.best_bid() + book.best_ask()) // 2 or 15_000
        price = str(book.instrument.price_decimal(mid + int(offset))) if otype == LIMIT else None
        prepared = desk.prepare(req(account=str(account), coid=f"o{i}", side=int(side), qty=str(Decimal(lots) / 20),
                                    price=price, otype=int(otype), tif=int(tif), symbol="SOLUSDT"))  # fmt: skip
        assert isinstance(prepared, PreparedOrder)
        desk.place(prepared, i)
        events += desk.take_outbox()
    sim.run(50)
    desk.pump(len(cmds))
    events += desk.take_outbox()
    position: dict[int, int] = defaultdict(int)
    for ev in events:
        if ev[0] == TRADE:
            buyer, seller = (ev[12], ev[7]) if ev[5] == BUY else (ev[7], ev[12])
            assert buyer != seller
            position[buyer] += ev[4]
            position[seller] -= ev[4]
    assert sum(position.values()) == 0  # bought == sold
    for account in ("M0", "M1", "M2"):
        history = desk.log.history(account)
        net = sum((1 if e.side == BUY else -1) * (e.last_qty or 0) for e in history if e.type == ExecType.TRADE)
        assert net == book.instrument.qty_decimal(position.get(desk.owner_of(account), 0))
        per_order: dict[str, Decimal] = defaultdict(Decimal)
        for e in history:
            if e.type == ExecType.TRADE:
                per_order[e.venue_order_id] += e.last_qty or 0
                assert e.cum_qty == per_order[e.venue_order_id]
        assert [e.exec_sequence for e in history] == sorted({e.exec_sequence for e in history})


# --- the service layer: latency, in-flight retries, streams --------------------------------------------------------


async def test_latency_delays_entry_and_a_retry_in_flight_gets_the_same_order() -> None:
    runner = _runner(ListSink())
    entry = OrderEntry(runner, latency_s=0.05)
    book = runner.engine.book("BTCUSDT")
    before = book.resting_orders()
    first = asyncio.ensure_future(entry.place(req(price="1000", qty="0.01")))
    await asyncio.sleep(0.01)
    assert book.resting_orders() == before  # still on the wire
    retry = await asyncio.wait_for(entry.place(req(price="1000", qty="0.01")), 2)
    original = await asyncio.wait_for(first, 2)
    assert retry.replayed and not original.replayed and retry.venue_order_id == original.venue_order_id
    assert book.resting_orders() == before + 1


async def test_stream_subscription_replays_then_goes_live_and_is_cut_off_when_it_falls_behind() -> None:
    runner = _runner(ListSink(), first_exec_sequence=100)
    entry = OrderEntry(runner, queue_size=3)
    first = await entry.place(req(coid="a", price="1000", qty="0.01"))
    sub, replay, dropped = entry.subscribe("A1", first.executions[0].exec_sequence - 1)
    assert [e.venue_order_id for e in replay] == [first.venue_order_id] and dropped == 0
    await entry.cancel("A1", first.venue_order_id, "")
    await asyncio.wait_for(sub.wait(1), 2)
    assert [e.type for e in sub.drain()] == [ExecType.CANCELED]
    for i in range(4):
        await entry.place(req(coid=f"x{i}", price="1000", qty="0.01"))
    with pytest.raises(DomainError) as exc:
        sub.drain()
    assert error(exc) == (ErrorKind.RESOURCE_EXHAUSTED, "SLOW_CONSUMER", [])
    assert entry.subscriber_count == 1
    entry.unsubscribe(sub)
    assert entry.subscriber_count == 0


# --- the contract ---------------------------------------------------------------------------------------------------


def test_execution_enums_have_the_proto_numbers() -> None:
    for t in ExecType:
        assert execution_pb2.PrismExecutionType.Value("PRISM_EXECUTION_TYPE_" + t.name) == t.value
    for status in OrderStatus:
        assert order_pb2.OrderStatus.Value("ORDER_STATUS_" + status.name) == status.value
    for liquidity in Liquidity:
        assert fill_pb2.Liquidity.Value("LIQUIDITY_" + liquidity.name) == liquidity.value


def test_executions_translate_to_protobuf_with_plain_decimal_strings_and_error_reasons() -> None:
    base = Execution(7, "E7", "A1", "BTCUSDT", "P1", "c1", ExecType.TRADE, OrderStatus.FILLED, Side.BUY,
                     Decimal("0.00001"), Decimal(0), 5, Decimal("60000.1"), Decimal("0.00001"), Decimal("1E-7"),
                     "USDT", Liquidity.MAKER, "42")  # fmt: skip
    pb = execution_pb(base)
    assert (pb.exec_sequence, pb.type, pb.order_status) == (7, execution_pb2.PRISM_EXECUTION_TYPE_TRADE, 4)
    assert (pb.fee.value, pb.last_price.value, pb.cum_qty.value) == ("0.0000001", "60000.1", "0.00001")
    assert pb.liquidity == fill_pb2.LIQUIDITY_MAKER and pb.trade_id == "42" and pb.leaves_qty.value == "0"
    expired = execution_pb(replace(base, type=ExecType.EXPIRED, last_price=None, fee=None, reason="NO_LIQUIDITY"))
    assert expired.reason == errors_pb2.ERROR_REASON_NO_LIQUIDITY and not expired.HasField("last_price")
    assert not expired.HasField("fee")
