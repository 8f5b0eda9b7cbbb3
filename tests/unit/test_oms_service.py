"""The OMS service with a fake journal (round-tripping events through protobuf) and a fake risk check:
idempotent submit (retries, races, lost acks, restarts), cancels, amends, reports, kill switch, queries."""

from __future__ import annotations

import asyncio
import itertools
from decimal import Decimal
from typing import Any, cast

import pytest
from trade.oms.v1 import events_pb2, oms_pb2
from trade.type.v1 import decimal_pb2, order_pb2

from services.oms.adapters.codec import event_from_pb, event_to_pb
from services.oms.domain.model import (
    ExecType,
    Fill,
    KillSwitch,
    OrderChange,
    OrderSpec,
    OrderType,
    RiskVerdict,
    Side,
    Status,
    VenueReport,
)
from services.oms.domain.service import Amend, NewOrder, Oms, OrderQuery, order_id_for
from services.oms.servicer import OmsServicer
from services.runtime.errors import DomainError, ErrorKind
from services.runtime.identity import Principal

D = Decimal


class FakeJournal:
    """JetStream ORDERS in memory: events stored as protobuf bytes, deduplicated by event id."""

    def __init__(self) -> None:
        self.events: dict[str, bytes] = {}
        self.report_ids: dict[str, str] = {}  # the Trade-Report-Id header
        self.lose_next_ack = False

    async def append(self, change: OrderChange) -> OrderChange | None:
        await asyncio.sleep(0)
        if change.event_id in self.events:
            return self.stored(change.event_id)
        self.events[change.event_id] = event_to_pb(change).SerializeToString()
        self.report_ids[change.event_id] = change.report_id
        if self.lose_next_ack:
            self.lose_next_ack = False
            raise DomainError("DEPENDENCY_UNAVAILABLE", "ack lost", ErrorKind.UNAVAILABLE)
        return None

    def stored(self, event_id: str) -> OrderChange:
        return event_from_pb(events_pb2.OrderEvent.FromString(self.events[event_id]), self.report_ids[event_id])

    def decoded(self) -> list[events_pb2.OrderEvent]:
        return [events_pb2.OrderEvent.FromString(b) for b in self.events.values()]


class FakeRisk:
    def __init__(self) -> None:
        self.calls = 0
        self.reject_reason = ""
        self.unavailable = False
        self._ids = itertools.count(1)

    async def check(self, account_id: str, symbol: str, spec: OrderSpec, *args: str) -> RiskVerdict:
        self.calls += 1
        await asyncio.sleep(0.001)
        if self.unavailable:
            raise DomainError("RISK_CHECK_UNAVAILABLE", "risk down", ErrorKind.UNAVAILABLE)
        if self.reject_reason:
            return RiskVerdict(False, f"chk-{next(self._ids)}", self.reject_reason, "limit exceeded")
        return RiskVerdict(True, f"chk-{next(self._ids)}")


class FakeClock:
    def __init__(self) -> None:
        self.t = 1_700_000_000_000_000_000

    def now_ns(self) -> int:
        self.t += 1000
        return self.t


def make_oms(journal: FakeJournal | None = None, risk: FakeRisk | None = None) -> Oms:
    oms = Oms(journal or FakeJournal(), risk or FakeRisk(), FakeClock())
    oms.mark_ready()
    return oms


def rebuilt(journal: FakeJournal) -> Oms:
    oms = Oms(journal, FakeRisk(), FakeClock())
    for event_id in journal.events:
        oms.restore(journal.stored(event_id))
    oms.mark_ready()
    return oms


def new(coid: str = "c-1", qty: str = "2", account: str = "acct-1", symbol: str = "BTCUSDT") -> NewOrder:
    spec = OrderSpec(Side.BUY, OrderType.LIMIT, D(qty), limit_price=D("100"))
    return NewOrder(account, symbol, coid, spec, "")


def trade(order_id: str, n: int, qty: str, price: str = "100") -> VenueReport:
    fill = Fill(
        f"fill-{order_id}-{n}", D(price), D(qty), D("0.01"), "USDT", event_time_ns=1_700_000_000_000_000_000 + n
    )
    return VenueReport(f"rep-{order_id}-{n}", order_id, ExecType.TRADE, venue_order_id="V1", fill=fill)


def principal(*accounts: str) -> Principal:
    return Principal("u-" + "-".join(accounts), "user", frozenset({"trader"}), frozenset(accounts), "jti", 0)


async def test_submit_appends_accepted_event_and_returns_pending_new() -> None:
    journal = FakeJournal()
    oms = make_oms(journal)
    order, replayed = await oms.submit(new())
    assert (order.status, order.version, replayed) == (Status.PENDING_NEW, 1, False)
    [event] = journal.decoded()
    assert event.event_id == f"{order.order_id}:1" and event.WhichOneof("event") == "accepted"
    assert event.order.status == order_pb2.ORDER_STATUS_PENDING_NEW
    assert order.order_id == order_id_for("acct-1", "c-1") and len(order.order_id) == 26


async def test_submit_retry_returns_original_order_replayed() -> None:
    journal, risk = FakeJournal(), FakeRisk()
    oms = make_oms(journal, risk)
    first, _ = await oms.submit(new())
    for _ in range(5):
        again, replayed = await oms.submit(new())
        assert replayed and again == first
    assert len(journal.events) == 1 and risk.calls == 1


async def test_concurrent_identical_submits_create_one_order() -> None:
    journal = FakeJournal()
    oms = make_oms(journal)
    results = await asyncio.gather(*(oms.submit(new()) for _ in range(20)))
    assert len({o.order_id for o, _ in results}) == 1
    assert [r for _, r in results].count(False) == 1
    assert len(journal.events) == 1
    assert len(oms._locks) == 0


async def test_reused_client_order_id_with_other_spec_is_already_exists() -> None:
    oms = make_oms()
    await oms.submit(new(qty="2"))
    with pytest.raises(DomainError) as err:
        await oms.submit(new(qty="3"))
    assert (err.value.kind, err.value.reason) == (ErrorKind.ALREADY_EXISTS, "DUPLICATE_CLIENT_ORDER_ID_MISMATCH")


async def test_lost_publish_ack_then_retry_yields_the_stored_order_not_a_second_one() -> None:
    journal = FakeJournal()
    oms = make_oms(journal)
    journal.lose_next_ack = True
    with pytest.raises(DomainError) as err:
        await oms.submit(new())
    assert err.value.kind == ErrorKind.UNAVAILABLE
    order, replayed = await oms.submit(new())
    assert replayed and order.status == Status.PENDING_NEW
    assert len(journal.events) == 1


async def test_lost_ack_on_a_later_event_is_recovered_on_the_next_command() -> None:
    journal = FakeJournal()
    oms = make_oms(journal)
    order, _ = await oms.submit(new())
    await oms.on_report(VenueReport("r-new", order.order_id, ExecType.NEW, venue_order_id="V1"))
    journal.lose_next_ack = True
    with pytest.raises(DomainError):
        await oms.on_report(trade(order.order_id, 1, "1"))
    # The same report is delivered again (it was not acknowledged): the stored event is adopted, nothing doubles.
    after = await oms.on_report(trade(order.order_id, 1, "1"))
    assert after is not None and after.cum_qty == D(1) and after.version == 3
    assert len(journal.events) == 3


async def test_rebuild_from_journal_restores_orders_and_idempotency() -> None:
    journal = FakeJournal()
    oms = make_oms(journal)
    order, _ = await oms.submit(new())
    await oms.on_report(VenueReport("r-new", order.order_id, ExecType.NEW, venue_order_id="V1"))
    await oms.on_report(trade(order.order_id, 1, "0.5", "100"))
    await oms.on_report(trade(order.order_id, 2, "0.5", "101"))
    await oms.submit(new("c-2"))
    second = rebuilt(journal)
    for oid in (order.order_id, order_id_for("acct-1", "c-2")):
        assert second.book.get(oid) == oms.book.get(oid)
    assert second.book.fills_of("acct-1") == oms.book.fills_of("acct-1")
    again, replayed = await second.submit(new())
    assert replayed and again.cum_qty == D(1)
    assert await second.on_report(trade(order.order_id, 2, "0.5", "101")) == second.book.get(order.order_id)
    assert len(journal.events) == 5


async def test_risk_rejection_records_a_rejected_order_with_reason() -> None:
    journal, risk = FakeJournal(), FakeRisk()
    risk.reject_reason = "RISK_MAX_NOTIONAL"
    oms = make_oms(journal, risk)
    order, replayed = await oms.submit(new())
    assert (order.status, order.reason, replayed) == (Status.REJECTED, "RISK_MAX_NOTIONAL", False)
    [event] = journal.decoded()
    assert event.WhichOneof("event") == "rejected" and event.rejected.reason != 0
    assert oms.get("acct-1", "", "c-1") == order


async def test_risk_unavailable_fails_closed_and_creates_no_order() -> None:
    journal, risk = FakeJournal(), FakeRisk()
    risk.unavailable = True
    oms = make_oms(journal, risk)
    with pytest.raises(DomainError) as err:
        await oms.submit(new())
    assert (err.value.kind, err.value.reason) == (ErrorKind.UNAVAILABLE, "RISK_CHECK_UNAVAILABLE")
    assert not journal.events and oms.book.by_client_order_id("acct-1", "c-1") is None


async def test_cancel_by_id_checks_the_callers_accounts() -> None:
    oms = make_oms()
    order, _ = await oms.submit(new())
    with pytest.raises(DomainError) as err:
        await oms.cancel("acct-1", order.order_id, principal=principal("acct-2"))
    assert err.value.kind == ErrorKind.NOT_FOUND
    with pytest.raises(DomainError):
        await oms.cancel("acct-2", order.order_id, principal=principal("acct-2"))
    canceled = await oms.cancel("acct-1", order.order_id, principal=principal("acct-1"))
    assert canceled.status == Status.PENDING_CANCEL
    assert (await oms.cancel("acct-1", "", "c-1")).version == canceled.version


async def test_venue_reports_fill_the_order_and_duplicates_change_nothing() -> None:
    journal = FakeJournal()
    oms = make_oms(journal)
    order, _ = await oms.submit(new())
    await oms.on_report(VenueReport("r-new", order.order_id, ExecType.NEW, venue_order_id="V1"))
    await oms.on_report(trade(order.order_id, 1, "0.5"))
    await oms.on_report(trade(order.order_id, 1, "0.5"))
    done = await oms.on_report(trade(order.order_id, 2, "1.5"))
    assert done is not None and (done.status, done.cum_qty, done.leaves_qty) == (Status.FILLED, D(2), D(0))
    assert len(journal.events) == 4
    assert len(oms.book.fills_of("acct-1")) == 2
    with pytest.raises(DomainError) as err:
        await oms.cancel("acct-1", order.order_id)
    assert err.value.reason == "TOO_LATE_TO_CANCEL"


async def test_overfill_report_is_dropped_without_changing_the_order() -> None:
    oms = make_oms()
    order, _ = await oms.submit(new())
    assert await oms.on_report(trade(order.order_id, 1, "3")) is None
    assert oms.book.get(order.order_id) == order


async def test_kill_switch_cancels_open_orders_in_scope_only() -> None:
    oms = make_oms()
    mine, _ = await oms.submit(new("k-1"))
    other, _ = await oms.submit(new("k-2", account="acct-2"))
    ks_time = oms.clock.now_ns()
    later, _ = await oms.submit(new("k-3"))
    canceled = await oms.on_kill_switch(KillSwitch("ks-1", "acct-1", "panic", "risk-mgr", ks_time))
    assert canceled == [mine.order_id]
    got = oms.book.get(mine.order_id)
    assert got is not None and (got.status, got.reason) == (Status.PENDING_CANCEL, "RISK_KILL_SWITCH")
    assert oms.book.get(other.order_id) == other and oms.book.get(later.order_id) == later
    everything = await oms.on_kill_switch(KillSwitch("ks-2", "", "global", "admin", oms.clock.now_ns()))
    assert sorted(everything) == sorted([mine.order_id, later.order_id, other.order_id])


async def test_amend_refused_by_risk_leaves_order_unchanged() -> None:
    risk = FakeRisk()
    oms = make_oms(risk=risk)
    order, _ = await oms.submit(new())
    order = await oms.on_report(VenueReport("r-new", order.order_id, ExecType.NEW)) or order
    risk.reject_reason = "RISK_MAX_ORDER_QTY"
    amend = Amend("acct-1", "BTCUSDT", order.order_id, D(5), None, None)
    with pytest.raises(DomainError) as err:
        await oms.amend(amend)
    assert (err.value.kind, err.value.reason) == (ErrorKind.FAILED_PRECONDITION, "RISK_MAX_ORDER_QTY")
    assert oms.book.get(order.order_id) == order
    risk.reject_reason = ""
    pending = await oms.amend(amend)
    assert pending.status == Status.PENDING_REPLACE and pending.pending_spec is not None
    replaced = await oms.on_report(VenueReport("r-rep", order.order_id, ExecType.REPLACED))
    assert replaced is not None and (replaced.status, replaced.spec.quantity) == (Status.NEW, D(5))


async def test_list_orders_pages_newest_first_and_filters() -> None:
    oms = make_oms()
    ids = [(await oms.submit(new(f"p-{i}")))[0].order_id for i in range(5)]
    await oms.submit(new("p-eth", symbol="ETHUSDT"))
    page, token = oms.list_orders(OrderQuery("acct-1", symbol="BTCUSDT", page_size=2))
    seen = [o.order_id for o in page]
    while token:
        page, token = oms.list_orders(OrderQuery("acct-1", symbol="BTCUSDT", page_size=2, page_token=token))
        seen += [o.order_id for o in page]
    assert seen == list(reversed(ids))
    with pytest.raises(DomainError) as err:
        oms.list_orders(OrderQuery("acct-1", symbol="ETHUSDT", page_size=2, page_token="bad"))
    assert err.value.reason == "INVALID_PAGE_TOKEN"
    _, first_token = oms.list_orders(OrderQuery("acct-1", page_size=1))
    with pytest.raises(DomainError):
        oms.list_orders(OrderQuery("acct-1", symbol="ETHUSDT", page_size=1, page_token=first_token))


async def test_not_ready_oms_refuses_calls() -> None:
    oms = Oms(FakeJournal(), FakeRisk(), FakeClock())
    with pytest.raises(DomainError) as err:
        await oms.submit(new())
    assert (err.value.kind, err.value.reason) == (ErrorKind.UNAVAILABLE, "SERVICE_NOT_READY")


async def test_order_subscription_gets_open_orders_snapshot_then_changes() -> None:
    oms = make_oms()
    first, _ = await oms.submit(new("s-1"))
    snapshot, sub = oms.subscribe_orders("acct-1", frozenset())
    assert [o.order_id for o in snapshot] == [first.order_id]
    await oms.submit(new("s-2"))
    await oms.submit(new("s-3", account="acct-2"))
    item = sub.queue.get_nowait()
    assert isinstance(item, OrderChange) and item.order.client_order_id == "s-2"
    assert sub.queue.empty()


def _submit_request(**overrides: Any) -> oms_pb2.SubmitOrderRequest:
    spec = order_pb2.OrderSpec(
        side=order_pb2.SIDE_BUY, order_type=order_pb2.ORDER_TYPE_LIMIT, quantity=decimal_pb2.Decimal(value="1")
    )
    spec.limit_price.value = "100"
    request = oms_pb2.SubmitOrderRequest(account_id="acct-1", symbol="BTCUSDT", client_order_id="ok-1", spec=spec)
    for key, value in overrides.items():
        setattr(request, key, value)
    return request


@pytest.mark.parametrize(
    ("request_", "fields"),
    [
        (_submit_request(client_order_id="has space"), {"client_order_id"}),
        (_submit_request(client_order_id="x" * 65), {"client_order_id"}),
        (_submit_request(account_id="a.b"), {"account_id"}),
        (
            oms_pb2.SubmitOrderRequest(
                account_id="a",
                symbol="BTCUSDT",
                client_order_id="c",
                spec=order_pb2.OrderSpec(
                    side=order_pb2.SIDE_BUY,
                    order_type=order_pb2.ORDER_TYPE_MARKET,
                    quantity=decimal_pb2.Decimal(value="-1"),
                    limit_price=decimal_pb2.Decimal(value="1e5"),
                ),
            ),
            {"spec.quantity", "spec.limit_price"},
        ),
        (oms_pb2.SubmitOrderRequest(account_id="a", symbol="BTCUSDT", client_order_id="c"), {"spec"}),
    ],
)
async def test_invalid_submit_is_invalid_argument_with_field_violations(
    request_: oms_pb2.SubmitOrderRequest, fields: set[str]
) -> None:
    journal = FakeJournal()
    servicer = OmsServicer(make_oms(journal))
    with pytest.raises(DomainError) as err:
        await servicer.SubmitOrder(request_, cast(Any, None))
    assert err.value.kind == ErrorKind.INVALID_ARGUMENT
    assert {v.field for v in err.value.violations} >= fields
    assert not journal.events


async def test_valid_submit_through_servicer_returns_pending_new() -> None:
    servicer = OmsServicer(make_oms())
    response = await servicer.SubmitOrder(_submit_request(), cast(Any, None))
    assert response.order.status == order_pb2.ORDER_STATUS_PENDING_NEW and not response.replayed
    assert response.order.spec.time_in_force == order_pb2.TIME_IN_FORCE_GTC
    assert response.order.leaves_qty.value == "1"


async def test_fill_subscription_replays_fills_since_a_time_then_streams_new_ones() -> None:
    oms = make_oms()
    order, _ = await oms.submit(new(qty="3"))
    for n in (1, 2):
        await oms.on_report(trade(order.order_id, n, "1"))
    replay, sub = oms.subscribe_fills("acct-1", frozenset({"BTCUSDT"}), since_ns=1_700_000_000_000_000_002)
    assert [f.fill_id for f in replay] == [f"fill-{order.order_id}-2"]
    await oms.on_report(trade(order.order_id, 3, "1"))
    live = sub.queue.get_nowait()
    assert isinstance(live, Fill) and live.fill_id == f"fill-{order.order_id}-3" and live.order_id == order.order_id


async def test_a_subscriber_that_falls_behind_is_marked_overflowed() -> None:
    oms = Oms(FakeJournal(), FakeRisk(), FakeClock(), stream_queue_limit=2)
    oms.mark_ready()
    _, sub = oms.subscribe_orders("acct-1", frozenset())
    for i in range(3):
        await oms.submit(new(f"o-{i}"))
    assert sub.overflowed and sub.queue.qsize() == 2
    oms.unsubscribe(sub)
    await oms.submit(new("o-after"))
    assert sub.queue.qsize() == 2
