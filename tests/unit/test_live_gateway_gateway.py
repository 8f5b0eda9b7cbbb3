"""The gateway with fakes: deterministic report/fill ids, fill before report, dedup, resume points, errors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import replace
from decimal import Decimal

import pytest
from trade.live_gateway.v1 import live_gateway_pb2

from services.live_gateway.domain.gateway import Gateway
from services.live_gateway.domain.ids import exec_subject, fill_id, fill_subject, report_id
from services.live_gateway.domain.model import (
    AmendOrder,
    AmendResult,
    CancelOrder,
    CancelResult,
    ConnectionState,
    ConnectionStatus,
    ExecType,
    ExecutionReport,
    Fill,
    Liquidity,
    OrderSpec,
    OrderStatus,
    OrderType,
    PlaceOrder,
    PlaceResult,
    Side,
    TimeInForce,
    Venue,
    VenueCapabilities,
    VenueExecution,
    VenueRejected,
    VenueUnavailable,
)
from services.live_gateway.domain.ports import Checkpoints, ExecutionSink
from services.live_gateway.servicer import LiveGatewayServicer
from services.runtime.errors import DomainError, ErrorKind

D = Decimal
SPEC = OrderSpec(Side.BUY, OrderType.LIMIT, D(2), D(100), time_in_force=TimeInForce.GTC)


def execution(exec_id: str = "E1", seq: int = 0, **kw: object) -> VenueExecution:
    base = VenueExecution(
        venue=Venue.PRISM,
        account_id="acc-1",
        symbol="BTCUSDT",
        order_id="ord-1",
        venue_order_id="V1",
        exec_id=exec_id,
        exec_type=ExecType.NEW,
        order_status=OrderStatus.NEW,
        side=Side.BUY,
        venue_sequence=seq,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def trade(exec_id: str, seq: int, qty: str, cum: str, price: str = "100", trade_id: str = "T1") -> VenueExecution:
    return execution(
        exec_id,
        seq,
        exec_type=ExecType.TRADE,
        order_status=OrderStatus.PARTIALLY_FILLED if D(cum) < 2 else OrderStatus.FILLED,
        last_price=D(price),
        last_quantity=D(qty),
        cum_qty=D(cum),
        leaves_qty=D(2) - D(cum),
        fee=D("0.01"),
        fee_currency="USDT",
        liquidity=Liquidity.MAKER,
        trade_id=trade_id,
    )


class FakePublisher:
    """JetStream stand-in: dedups by id, records the publishing order."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str, int | None]] = []
        self.ids: set[str] = set()
        self.reports: list[ExecutionReport] = []
        self.fail_next = False

    async def send_fill(self, fill: Fill) -> Awaitable[bool]:
        self.log.append(("fill", fill.fill_id, None))
        new = fill.fill_id not in self.ids
        self.ids.add(fill.fill_id)
        return _answer(new)

    async def send_report(self, report: ExecutionReport, resume_sequence: int) -> Awaitable[bool]:
        if self.fail_next:
            self.fail_next = False
            return _answer(ConnectionError("nats down"))
        self.log.append(("report", report.report_id, resume_sequence))
        if report.report_id in self.ids:
            return _answer(False)
        self.ids.add(report.report_id)
        self.reports.append(report)
        return _answer(True)


async def _answer(outcome: bool | Exception) -> bool:
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


class FakeCheckpoints:
    def __init__(self, sequences: dict[tuple[Venue, str], int] | None = None) -> None:
        self.sequences = sequences or {}

    async def accounts(self, venue: Venue) -> list[str]:
        return [a for v, a in self.sequences if v == venue]

    async def last_sequence(self, venue: Venue, account_id: str) -> int:
        return self.sequences.get((venue, account_id), 0)


class FakeVenue:
    def __init__(self, venue: Venue = Venue.PRISM) -> None:
        self._venue = venue
        self.placed: list[PlaceOrder] = []
        self.answer: PlaceResult | Exception = PlaceResult("V1", OrderStatus.NEW, (execution(),))
        self.state = ConnectionState.CONNECTED

    @property
    def venue(self) -> Venue:
        return self._venue

    @property
    def capabilities(self) -> VenueCapabilities:
        return VenueCapabilities("fake", True, (OrderType.LIMIT,), (TimeInForce.GTC,), True)

    async def start(self, sink: ExecutionSink, checkpoints: Checkpoints) -> None:
        self.sink = sink

    async def stop(self) -> None:
        pass

    async def place(self, order: PlaceOrder) -> PlaceResult:
        self.placed.append(order)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    async def cancel(self, cancel: CancelOrder) -> CancelResult:
        raise VenueRejected("ORDER_NOT_FOUND", "unknown order")

    async def amend(self, amend: AmendOrder) -> AmendResult:
        return AmendResult(True, "V1")

    def status(self) -> ConnectionStatus:
        return ConnectionStatus(self.state, "probe failed" if self.state == ConnectionState.DISCONNECTED else "")


class Clock:
    def __init__(self) -> None:
        self.t = 1_000

    def now_ns(self) -> int:
        self.t += 1_000
        return self.t


def make(checkpoints: FakeCheckpoints | None = None) -> tuple[Gateway, FakeVenue, FakePublisher]:
    venue, pub = FakeVenue(), FakePublisher()
    return Gateway([venue], pub, checkpoints or FakeCheckpoints(), Clock()), venue, pub


def place_cmd(order_id: str = "ord-1", venue: Venue = Venue.PRISM) -> PlaceOrder:
    return PlaceOrder("acc-1", "BTCUSDT", venue, order_id, "client-1", SPEC)


def test_report_and_fill_ids_are_deterministic_and_distinct_per_event() -> None:
    a, b = trade("E7", 7, "1", "1"), trade("E7", 7, "1", "1")
    assert report_id(a) == report_id(b) == "prism:acc-1:E7"
    assert fill_id(a) == fill_id(b) == "prism:T1:V1"
    assert report_id(trade("E8", 8, "1", "2")) != report_id(a)
    assert fill_id(replace(a, venue_order_id="V2")) != fill_id(a)  # the other side of the same trade
    assert exec_subject(Venue.BINANCE_SPOT, "acc-1") == "exec.binance_spot.acc-1"
    assert fill_subject("acc-1", "BTCUSDT") == "fills.acc-1.BTCUSDT"


async def test_trade_publishes_the_fill_before_its_report() -> None:
    gw, _, pub = make()
    await gw.on_execution(trade("E2", 2, "1", "1"), True)
    assert [kind for kind, _, _ in pub.log] == ["fill", "report"]
    report = pub.reports[0]
    assert report.fill is not None and report.fill.fill_id == "prism:T1:V1"
    assert report.fill.price == D(100) and report.fill.quantity == D(1) and report.fill.side == Side.BUY


async def test_a_redelivered_event_is_fanned_out_once() -> None:
    gw, _, pub = make()
    sub = gw.subscribe("acc-1", frozenset())
    await gw.on_execution(trade("E2", 2, "1", "1"), False)
    await gw.on_execution(trade("E2", 2, "1", "1"), True)
    assert sub.queue.qsize() == 1
    assert len(pub.reports) == 1


async def test_resume_header_follows_the_stream_and_starts_from_the_stored_checkpoint() -> None:
    gw, _, pub = make(FakeCheckpoints({(Venue.PRISM, "acc-1"): 40}))
    assert await gw.last_sequence(Venue.PRISM, "acc-1") == 40
    await gw.on_execution(execution("E45", 45), False)  # an RPC answer: does not move the resume point
    await gw.on_execution(execution("E41", 41), True)
    await gw.on_execution(execution("E45", 45), True)  # already stored: not sent again, the point still moves
    assert await gw.last_sequence(Venue.PRISM, "acc-1") == 45
    await gw.on_execution(execution("E46", 46), True)
    assert [seq for kind, _, seq in pub.log if kind == "report"] == [40, 41, 46]
    assert await gw.last_sequence(Venue.PRISM, "acc-1") == 46


async def test_a_report_sent_with_its_fill_vouches_only_for_the_events_before_it() -> None:
    gw, _, pub = make(FakeCheckpoints({(Venue.PRISM, "acc-1"): 40}))
    await gw.on_execution(execution("E41", 41), True)
    await gw.on_execution(trade("E42", 42, "1", "1"), True)
    await gw.on_execution(execution("E43", 43), True)
    assert [(kind, seq) for kind, _, seq in pub.log] == [("report", 41), ("fill", None), ("report", 41), ("report", 43)]
    assert await gw.last_sequence(Venue.PRISM, "acc-1") == 43


async def test_events_that_queued_up_go_out_together_vouching_only_for_what_was_stored_before() -> None:
    gw, _, pub = make(FakeCheckpoints({(Venue.PRISM, "acc-1"): 40}))
    await gw.on_executions([execution("E41", 41), trade("E42", 42, "1", "1"), execution("E43", 43)], True)
    assert [(kind, seq) for kind, _, seq in pub.log] == [("report", 40), ("fill", None), ("report", 40), ("report", 40)]
    assert await gw.last_sequence(Venue.PRISM, "acc-1") == 43


async def test_a_caller_cancelled_while_it_waits_for_the_group_before_it_leaves_that_group_unharmed() -> None:
    gw, _, pub = make()
    gate = asyncio.Event()
    send_report = pub.send_report

    async def slow_first_ack(report: ExecutionReport, resume_sequence: int) -> Awaitable[bool]:
        answer = await send_report(report, resume_sequence)
        if report.execution.exec_id != "E41":
            return answer

        async def later() -> bool:
            await gate.wait()
            return await answer

        return later()

    pub.send_report = slow_first_ack  # type: ignore[method-assign]
    sub = gw.subscribe("acc-1", frozenset())
    first = asyncio.create_task(gw.on_execution(execution("E41", 41), False))
    await asyncio.sleep(0)
    second = asyncio.create_task(gw.on_execution(execution("E42", 42), False))
    await asyncio.sleep(0.01)  # the second waits for the first's fan-out
    second.cancel()  # its RPC's deadline passed
    await asyncio.gather(second, return_exceptions=True)
    gate.set()
    await asyncio.wait_for(first, 1)
    assert sub.queue.qsize() == 1 and [r.execution.exec_id for r in pub.reports] == ["E41", "E42"]


async def test_a_failed_group_moves_nothing_and_its_replay_is_published_again() -> None:
    gw, _, pub = make(FakeCheckpoints({(Venue.PRISM, "acc-1"): 40}))
    pub.fail_next = True
    with pytest.raises(ConnectionError):
        await gw.on_executions([execution("E41", 41), execution("E42", 42)], True)
    assert await gw.last_sequence(Venue.PRISM, "acc-1") == 40
    await gw.on_executions([execution("E41", 41), execution("E42", 42)], True)
    assert await gw.last_sequence(Venue.PRISM, "acc-1") == 42
    assert sorted(r.execution.exec_id for r in pub.reports) == ["E41", "E42"]


async def test_a_failed_publish_does_not_move_the_resume_point() -> None:
    gw, _, pub = make(FakeCheckpoints({(Venue.PRISM, "acc-1"): 5}))
    pub.fail_next = True
    with pytest.raises(ConnectionError):
        await gw.on_execution(execution("E9", 9), True)
    assert await gw.last_sequence(Venue.PRISM, "acc-1") == 5


async def test_a_new_account_resumes_from_just_before_its_first_answered_event() -> None:
    gw, _, _ = make()
    await gw.on_execution(execution("E12", 12), False)
    assert await gw.last_sequence(Venue.PRISM, "acc-1") == 11


async def test_place_publishes_answered_executions_and_a_retry_is_replayed_without_the_venue() -> None:
    gw, venue, pub = make()
    first = await gw.place(place_cmd())
    again = await gw.place(place_cmd())
    assert first.status == OrderStatus.NEW and not first.replayed
    assert again.replayed and again.venue_order_id == "V1"
    assert len(venue.placed) == 1
    assert [r.execution.exec_type for r in pub.reports] == [ExecType.NEW]
    assert pub.reports[0].client_order_id == "client-1"
    assert pub.reports[0].quantity == D(2) and pub.reports[0].limit_price == D(100)


async def test_venue_rejection_is_published_and_returned_as_rejected() -> None:
    gw, venue, pub = make()
    venue.answer = VenueRejected("VENUE_REJECTED", "Account has insufficient balance", "-2010")
    result = await gw.place(place_cmd())
    assert result.status == OrderStatus.REJECTED
    (report,) = pub.reports
    assert report.report_id == "prism:acc-1:gw:ord-1:rejected"
    assert report.execution.exec_type == ExecType.REJECTED
    assert report.execution.reason == "VENUE_REJECTED"
    assert report.execution.text == "Account has insufficient balance"
    assert gw.venue_status(Venue.PRISM).orders_rejected == 1


async def test_unreachable_venue_fails_unavailable_and_a_retry_goes_to_the_venue_again() -> None:
    gw, venue, pub = make()
    venue.answer = VenueUnavailable("connection refused")
    with pytest.raises(DomainError) as err:
        await gw.place(place_cmd())
    assert err.value.kind == ErrorKind.UNAVAILABLE and err.value.reason == "VENUE_UNAVAILABLE"
    venue.answer = PlaceResult("V1", OrderStatus.NEW)
    assert (await gw.place(place_cmd())).status == OrderStatus.NEW
    assert len(venue.placed) == 2
    assert pub.reports == []


async def test_unknown_or_disabled_venue_is_invalid_argument() -> None:
    gw, _, _ = make()
    with pytest.raises(DomainError) as err:
        await gw.place(place_cmd(venue=Venue.BINANCE_SPOT))
    assert err.value.kind == ErrorKind.INVALID_ARGUMENT and err.value.reason == "UNKNOWN_VENUE"
    assert "binance_spot is not enabled" in err.value.message


async def test_disconnected_venue_refuses_orders() -> None:
    gw, venue, _ = make()
    venue.state = ConnectionState.DISCONNECTED
    with pytest.raises(DomainError) as err:
        await gw.place(place_cmd())
    assert err.value.reason == "VENUE_UNAVAILABLE"


async def test_invalid_order_lists_every_bad_field() -> None:
    gw, venue, _ = make()
    bad = PlaceOrder("acc 1", "BTCUSDT", Venue.PRISM, "", "", OrderSpec(Side.BUY, OrderType.LIMIT, D(0)))
    with pytest.raises(DomainError) as err:
        await gw.place(bad)
    fields = {v.field for v in err.value.violations}
    assert fields == {"account_id", "order_id", "spec.quantity", "spec.limit_price"}
    assert venue.placed == []


async def test_cancel_refused_by_the_venue_publishes_cancel_rejected() -> None:
    gw, _, pub = make()
    await gw.place(place_cmd())
    result = await gw.cancel(CancelOrder("acc-1", "", Venue.PRISM, "ord-1"))
    assert not result.accepted
    report = pub.reports[-1]
    assert report.execution.exec_type == ExecType.CANCEL_REJECTED
    assert report.execution.order_status == OrderStatus.NEW
    assert report.execution.symbol == "BTCUSDT" and report.execution.reason == "ORDER_NOT_FOUND"


async def test_avg_price_notional_and_open_orders_follow_the_fills() -> None:
    gw, _, pub = make()
    await gw.place(place_cmd())
    await gw.on_execution(trade("E2", 2, "1", "1", "100", "T1"), True)
    await gw.on_execution(trade("E3", 3, "1", "2", "103", "T2"), True)
    assert pub.reports[-1].avg_price == D("101.5")
    status = gw.venue_status(Venue.PRISM)
    assert status.traded_notional_today == D(203)
    assert status.open_order_count == 0 and status.orders_placed == 1


async def test_report_stream_sends_heartbeats_then_reports_and_closes_a_slow_consumer() -> None:
    venue, pub = FakeVenue(), FakePublisher()
    gw = Gateway([venue], pub, FakeCheckpoints(), Clock(), subscriber_queue_size=1)
    servicer = LiveGatewayServicer(gw, heartbeat_s=0.01)
    stream = servicer.StreamExecutionReports(
        live_gateway_pb2.StreamExecutionReportsRequest(account_id="acc-1"),
        None,  # type: ignore[arg-type]
    )
    first = await asyncio.wait_for(anext(stream), 1)
    assert first.HasField("heartbeat")
    await gw.on_execution(execution("E1"), False)
    second = await asyncio.wait_for(anext(stream), 1)
    assert second.report.report_id == "prism:acc-1:E1"
    await gw.on_execution(execution("E2"), False)
    await gw.on_execution(execution("E3"), False)  # the queue holds one: the client fell behind
    with pytest.raises(DomainError) as err:
        await asyncio.wait_for(anext(stream), 1)
    assert err.value.reason == "SLOW_CONSUMER" and err.value.kind == ErrorKind.RESOURCE_EXHAUSTED
    assert gw.subscriber_count("acc-1") == 0  # the closed stream unsubscribed
