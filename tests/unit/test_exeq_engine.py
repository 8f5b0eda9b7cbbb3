"""exeq execution engine with fakes (manual clock, fake OMS, in-memory event sink): schedules, child fills
aggregated once per fill, cancel, failures, validation, and a restart that never doubles a child."""

from __future__ import annotations

import asyncio
import itertools
from decimal import Decimal

import pytest
import structlog.testing

from services.exeq.adapters.codec import parent_from, parent_pb
from services.exeq.domain.engine import EngineConfig, ExecutionEngine
from services.exeq.domain.model import (
    Algo,
    AlgoParams,
    ChildAck,
    ChildOrder,
    ChildUpdate,
    EventType,
    Instrument,
    ParentEvent,
    ParentOrder,
    ParentStatus,
    SubmitParent,
)
from services.exeq.domain.ports import ChildRefused, TransientError
from services.exeq.domain.slicing import VolumeProfile
from services.runtime.errors import DomainError, ErrorKind

S = 1_000_000_000
T0 = 1_700_000_000 * S
LOT = Decimal("0.001")
INSTRUMENTS = {"BTCUSDT": Instrument("BTCUSDT", LOT, "PRISM")}


def status(parent: ParentOrder) -> ParentStatus:
    return parent.status


class ManualClock:
    """Time moves only when the test advances it; sleepers wake in time order."""

    def __init__(self, now_ns: int = T0) -> None:
        self.now = now_ns
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now_ns(self) -> int:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((self.now + int(seconds * S), next(self._seq), future))
        await future

    async def settle(self) -> None:
        for _ in range(30):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        target = self.now + int(seconds * S)
        await self.settle()
        while True:
            due = sorted(w for w in self._waiters if w[0] <= target and not w[2].done())
            if not due:
                break
            when, _, future = due[0]
            self.now = max(self.now, when)
            future.set_result(None)
            await self.settle()
        self._waiters = [w for w in self._waiters if not w[2].done()]
        self.now = target
        await self.settle()


class FakeOms:
    def __init__(self) -> None:
        self.orders: dict[str, ChildOrder] = {}
        self.submits: list[tuple[str, Decimal, int]] = []
        self.cancels: list[str] = []
        self.status = "PENDING_NEW"
        self.transient_failures = 0
        self.refuse: ChildRefused | None = None
        self.on_submit: list[object] = []
        self.clock: ManualClock | None = None

    async def submit(self, parent: ParentOrder, child: ChildOrder) -> ChildAck:
        if self.transient_failures:
            self.transient_failures -= 1
            raise TransientError("UNAVAILABLE")
        if self.refuse is not None:
            raise self.refuse
        self.submits.append((child.client_order_id, child.quantity, self.clock.now if self.clock else 0))
        known = self.orders.get(child.client_order_id)
        if known is None:
            known = ChildOrder(**{**child.__dict__, "fill_ids": set()})
            known.order_id, known.status, known.version = f"OMS-{child.client_order_id}", self.status, 1
            self.orders[child.client_order_id] = known
        for hook in self.on_submit:
            assert callable(hook)
            await hook(parent, known)
        return ChildAck(known.order_id, self.status if known.version == 1 else known.status, 1)

    async def cancel(self, parent: ParentOrder, child: ChildOrder) -> None:
        self.cancels.append(child.order_id)

    async def list_children(self, parent: ParentOrder) -> list[ChildOrder]:
        prefix = parent.parent_order_id + "-"
        return [
            ChildOrder(**{**c.__dict__, "fill_ids": set()})
            for c in self.orders.values()
            if c.client_order_id.startswith(prefix)
        ]


class FakeSink:
    def __init__(self) -> None:
        self.events: list[ParentEvent] = []
        self.fail: object = None

    async def publish(self, event: ParentEvent) -> None:
        if callable(self.fail) and self.fail(event):
            raise ConnectionError("nats down")
        self.events.append(event)

    def types(self) -> list[EventType]:
        return [e.type for e in self.events]

    def latest(self) -> list[ParentOrder]:
        """What a restart rebuilds: the latest version of each parent, through the protobuf codec."""
        best: dict[str, ParentEvent] = {}
        for e in self.events:
            if e.parent.parent_order_id not in best or e.parent.version > best[e.parent.parent_order_id].parent.version:
                best[e.parent.parent_order_id] = e
        parents = [parent_from(parent_pb(e.parent)) for e in best.values()]
        return [p for p in parents if p is not None]


class Ids:
    def __init__(self) -> None:
        self.n = 0

    def new_id(self) -> str:
        self.n += 1
        return f"P{self.n}"


class Harness:
    def __init__(
        self,
        oms: FakeOms | None = None,
        sink: FakeSink | None = None,
        ids: Ids | None = None,
        instruments: dict[str, Instrument] | None = None,
    ) -> None:
        self.clock = ManualClock()
        self.oms = oms or FakeOms()
        self.oms.clock = self.clock
        self.sink = sink or FakeSink()
        self.ids = ids or Ids()
        self.engine = ExecutionEngine(
            self.oms,
            self.sink,
            self.clock,
            self.clock.sleep,
            self.ids,
            INSTRUMENTS if instruments is None else instruments,
            VolumeProfile([Decimal(1)] * 24),
            EngineConfig(first_backoff_s=0.01),
        )

    async def submit(self, **overrides: object) -> ParentOrder:
        fields: dict[str, object] = {
            "account_id": "ACC-1",
            "symbol": "BTCUSDT",
            "client_order_id": "algo-1",
            "side": "BUY",
            "quantity": Decimal("1.000"),
            "limit_price": None,
            "algo": Algo.TWAP,
            "params": AlgoParams(duration_ns=2 * S, slice_count=4),
        }
        fields.update(overrides)
        parent, _ = await self.engine.submit(SubmitParent(**fields))  # type: ignore[arg-type]
        await self.clock.settle()
        return parent

    async def fill(self, cid: str, fill_id: str, qty: str, price: str, status: str, version: int) -> None:
        child = self.oms.orders[cid]
        if version > child.version:  # the OMS's own view moves on too
            child.version, child.status = version, status
            child.cum_qty += Decimal(qty)
            child.notional += Decimal(qty) * Decimal(price)
        await self.engine.on_child_update(
            ChildUpdate(
                parent_order_id=cid.rsplit("-", 1)[0],
                order_id=child.order_id,
                client_order_id=cid,
                version=version,
                status=status,
                fill_id=fill_id,
                fill_qty=Decimal(qty),
                fill_price=Decimal(price),
            )
        )

    async def done(self, cid: str, status: str, version: int) -> None:
        child = self.oms.orders[cid]
        if version > child.version:
            child.version, child.status = version, status
        await self.engine.on_child_update(ChildUpdate(cid.rsplit("-", 1)[0], child.order_id, cid, version, status))


async def test_twap_sends_equal_children_at_equal_intervals_summing_to_the_parent() -> None:
    h = Harness()
    parent = await h.submit()
    await h.clock.advance(3)
    assert [(cid, q, t - T0) for cid, q, t in h.oms.submits] == [
        ("P1-1", Decimal("0.25"), 0),
        ("P1-2", Decimal("0.25"), S // 2),
        ("P1-3", Decimal("0.25"), S),
        ("P1-4", Decimal("0.25"), 3 * S // 2),
    ]
    assert status(parent) == ParentStatus.WORKING  # children still open
    assert parent.child_order_count == 4 and parent.scheduled_qty == Decimal(1)
    assert h.sink.types() == [EventType.ACCEPTED] + [EventType.CHILD_SENT] * 4
    assert [e.parent.version for e in h.sink.events] == [1, 2, 3, 4, 5]
    assert [e.event_id for e in h.sink.events][:2] == ["P1:1", "P1:2"]
    assert all(c.order_type == "MARKET" and c.time_in_force == "IOC" for c in parent.children)


async def test_child_fills_are_aggregated_once_per_fill_and_complete_the_parent() -> None:
    h = Harness()
    parent = await h.submit(algo=Algo.IMMEDIATE, params=AlgoParams(), quantity=Decimal("2"))
    await h.clock.advance(0)
    assert [q for _, q, _ in h.oms.submits] == [Decimal(2)]
    await h.fill("P1-1", "F1", "0.5", "100", "PARTIALLY_FILLED", 2)
    await h.fill("P1-1", "F1", "0.5", "100", "PARTIALLY_FILLED", 2)  # redelivered
    await h.fill("P1-1", "F1", "0.5", "100", "PARTIALLY_FILLED", 3)  # same fill, other event version
    assert parent.cum_qty == Decimal("0.5") and status(parent) == ParentStatus.WORKING
    await h.fill("P1-1", "F2", "1.5", "104", "FILLED", 4)
    assert parent.cum_qty == Decimal(2)
    assert parent.avg_price == Decimal(103)
    assert status(parent) == ParentStatus.COMPLETED and parent.leaves_qty == 0
    assert h.sink.types()[-3:] == [EventType.CHILD_FILLED, EventType.CHILD_FILLED, EventType.STATUS_CHANGED]


async def test_unfilled_child_quantity_is_caught_up_by_later_slices_and_the_parent_expires_at_the_end() -> None:
    h = Harness()

    async def fill_half_and_expire(parent: ParentOrder, child: ChildOrder) -> None:
        half = (child.quantity / 2).quantize(LOT)
        await h.fill(child.client_order_id, f"F-{child.client_order_id}", str(half), "100", "EXPIRED", 2)

    h.oms.on_submit.append(fill_half_and_expire)
    parent = await h.submit(quantity=Decimal("4"))
    await h.clock.advance(3)
    sent = [q for _, q, _ in h.oms.submits]
    assert sent == [Decimal(1), Decimal("1.5"), Decimal("1.75"), Decimal("1.875")]
    assert parent.cum_qty == sum((c.cum_qty for c in parent.children), Decimal(0)) < 4
    assert status(parent) == ParentStatus.EXPIRED and parent.leaves_qty == 0


async def test_cancel_stops_the_schedule_and_cancels_open_children() -> None:
    h = Harness()
    parent = await h.submit(params=AlgoParams(duration_ns=60 * S, slice_count=4))
    await h.clock.advance(1)
    assert len(h.oms.submits) == 1
    canceled = await h.engine.cancel("ACC-1", parent.parent_order_id, "changed my mind")
    assert status(canceled) == ParentStatus.CANCELING
    assert h.oms.cancels == ["OMS-P1-1"]
    await h.clock.advance(60)
    assert len(h.oms.submits) == 1  # no slice after the cancel
    await h.done("P1-1", "CANCELED", 2)
    assert status(parent) == ParentStatus.CANCELED
    again = await h.engine.cancel("ACC-1", parent.parent_order_id)
    assert status(again) == ParentStatus.CANCELED


async def test_cancel_of_a_pending_parent_cancels_at_once_and_a_done_parent_is_too_late() -> None:
    h = Harness()
    parent = await h.submit(params=AlgoParams(start_time_ns=T0 + 10 * S, duration_ns=2 * S, slice_count=2))
    assert status(parent) == ParentStatus.PENDING
    await h.engine.cancel("ACC-1", parent.parent_order_id)
    assert status(parent) == ParentStatus.CANCELED
    await h.clock.advance(20)
    assert h.oms.submits == []
    with pytest.raises(DomainError) as err:
        await h.engine.cancel("ACC-1", parent.parent_order_id + "x")
    assert err.value.reason == "PARENT_ORDER_NOT_FOUND" and err.value.kind == ErrorKind.NOT_FOUND
    done = await h.submit(client_order_id="algo-2", algo=Algo.IMMEDIATE, params=AlgoParams())
    await h.fill("P2-1", "F1", "1", "100", "FILLED", 2)
    with pytest.raises(DomainError) as err:
        await h.engine.cancel("ACC-1", done.parent_order_id)
    assert err.value.reason == "TOO_LATE_TO_CANCEL" and err.value.kind == ErrorKind.FAILED_PRECONDITION


async def test_pending_parent_starts_working_at_its_start_time() -> None:
    h = Harness()
    parent = await h.submit(params=AlgoParams(start_time_ns=T0 + 5 * S, duration_ns=2 * S, slice_count=2))
    await h.clock.advance(4.9)
    assert status(parent) == ParentStatus.PENDING and h.oms.submits == []
    await h.clock.advance(0.2)
    assert status(parent) == ParentStatus.WORKING
    assert [t - T0 for _, _, t in h.oms.submits] == [5 * S]


async def test_submit_is_idempotent_per_client_order_id() -> None:
    h = Harness()
    first = await h.submit()
    again, replayed = await h.engine.submit(
        SubmitParent("ACC-1", "BTCUSDT", "algo-1", "BUY", Decimal("1.0"), None, Algo.TWAP, AlgoParams(2 * S))
    )
    assert replayed and again is first
    with pytest.raises(DomainError) as err:
        await h.engine.submit(
            SubmitParent("ACC-1", "BTCUSDT", "algo-1", "SELL", Decimal("1"), None, Algo.TWAP, AlgoParams(2 * S))
        )
    assert err.value.kind == ErrorKind.ALREADY_EXISTS
    assert h.sink.types().count(EventType.ACCEPTED) == 1


@pytest.mark.parametrize(
    ("overrides", "fields"),
    [
        ({"params": AlgoParams(duration_ns=0)}, {"params.duration_ns"}),
        ({"algo": Algo.VWAP, "params": AlgoParams(duration_ns=-1)}, {"params.duration_ns"}),
        ({"algo": Algo.POV, "params": AlgoParams()}, {"params.participation_rate"}),
        ({"algo": Algo.POV, "params": AlgoParams(participation_rate=Decimal(0))}, {"params.participation_rate"}),
        ({"algo": Algo.POV, "params": AlgoParams(participation_rate=Decimal("0.6"))}, {"params.participation_rate"}),
        ({"algo": Algo.IMMEDIATE, "params": AlgoParams(duration_ns=S)}, {"params.duration_ns"}),
        ({"quantity": Decimal("0.0005")}, {"quantity"}),
        ({"quantity": Decimal(0), "side": "", "algo": None}, {"quantity", "side", "algo"}),
        ({"client_order_id": "bad id!"}, {"client_order_id"}),
        ({"limit_price": Decimal("-1")}, {"limit_price"}),
        ({"params": AlgoParams(duration_ns=S, max_child_quantity=Decimal("0.0001"))}, {"params.max_child_quantity"}),
        ({"params": AlgoParams(start_time_ns=T0 - 10 * S, duration_ns=S)}, {"params.duration_ns"}),
    ],
)
async def test_invalid_parent_orders_are_refused_with_field_violations(
    overrides: dict[str, object], fields: set[str]
) -> None:
    h = Harness()
    with pytest.raises(DomainError) as err:
        await h.submit(**overrides)
    assert err.value.kind == ErrorKind.INVALID_ARGUMENT
    assert {v.field for v in err.value.violations} == fields
    assert h.sink.events == [] and h.engine.parents() == []


async def test_unknown_symbol_is_refused_with_its_own_reason() -> None:
    h = Harness()
    with pytest.raises(DomainError) as err:
        await h.submit(symbol="NOPEUSDT")
    assert err.value.reason == "UNKNOWN_SYMBOL" and err.value.kind == ErrorKind.INVALID_ARGUMENT


async def test_a_parent_that_cannot_be_recorded_is_not_accepted() -> None:
    h = Harness()
    h.sink.fail = lambda event: True
    with pytest.raises(DomainError) as err:
        await h.submit()
    assert err.value.kind == ErrorKind.UNAVAILABLE
    assert h.engine.parents() == [] and h.oms.submits == []


async def test_risk_rejected_child_fails_the_parent_with_the_risk_reason() -> None:
    h = Harness()
    h.oms.status = "REJECTED"
    parent = await h.submit()
    await h.clock.advance(3)
    assert len(h.oms.submits) == 1
    assert status(parent) == ParentStatus.FAILED
    assert h.sink.types()[-3:] == [EventType.CHILD_SENT, EventType.CHILD_DONE, EventType.STATUS_CHANGED]


async def test_refused_child_fails_the_parent_and_transient_oms_errors_are_retried() -> None:
    h = Harness()
    h.oms.transient_failures = 2
    parent = await h.submit(algo=Algo.IMMEDIATE, params=AlgoParams())
    await h.clock.advance(1)
    assert [cid for cid, _, _ in h.oms.submits] == ["P1-1"] and status(parent) == ParentStatus.WORKING
    h.oms.refuse = ChildRefused("VALIDATION_FAILED", "bad child")
    failed = await h.submit(client_order_id="algo-2", algo=Algo.IMMEDIATE, params=AlgoParams())
    await h.clock.advance(1)
    assert status(failed) == ParentStatus.FAILED and failed.reason == "VALIDATION_FAILED"


async def test_immediate_with_limit_rests_at_the_limit_and_max_child_quantity_splits() -> None:
    h = Harness()
    parent = await h.submit(
        algo=Algo.IMMEDIATE,
        limit_price=Decimal("100.5"),
        quantity=Decimal("1"),
        params=AlgoParams(max_child_quantity=Decimal("0.4")),
    )
    await h.clock.advance(0)
    assert [q for _, q, _ in h.oms.submits] == [Decimal("0.4"), Decimal("0.4"), Decimal("0.2")]
    assert all(c.order_type == "LIMIT" and c.time_in_force == "GTC" for c in parent.children)
    assert all(c.limit_price == Decimal("100.5") for c in parent.children)


async def test_pov_trades_a_share_of_the_market_volume_after_its_start() -> None:
    h = Harness()
    parent = await h.submit(algo=Algo.POV, quantity=Decimal("1"), params=AlgoParams(participation_rate=Decimal("0.1")))
    assert h.engine.wants_trades("BTCUSDT") and not h.engine.wants_trades("ETHUSDT")
    h.engine.on_market_trade("BTCUSDT", Decimal("50"), T0 - S)  # before the start: not counted
    h.engine.on_market_trade("BTCUSDT", Decimal("2.5"), T0 + S)
    await h.clock.settle()
    assert [q for _, q, _ in h.oms.submits] == [Decimal("0.25")]
    h.engine.on_market_trade("BTCUSDT", Decimal("4"), T0 + 2 * S)
    await h.clock.settle()
    assert [q for _, q, _ in h.oms.submits] == [Decimal("0.25"), Decimal("0.4")]
    h.engine.on_market_trade("BTCUSDT", Decimal("1000"), T0 + 3 * S)
    await h.clock.settle()
    assert sum(q for _, q, _ in h.oms.submits) == Decimal(1)  # capped at the parent quantity
    for i, (cid, q, _) in enumerate(h.oms.submits):
        await h.fill(cid, f"F{i}", str(q), "100", "FILLED", 2)
    assert status(parent) == ParentStatus.COMPLETED
    assert not h.engine.wants_trades("BTCUSDT")


async def test_pov_symbol_watchers_hear_when_a_symbol_gains_its_first_and_loses_its_last_pov_parent() -> None:
    h = Harness()
    heard: list[frozenset[str]] = []
    h.engine.watch_pov_symbols(heard.append)
    await h.submit(algo=Algo.TWAP, client_order_id="twap-1", params=AlgoParams(duration_ns=5 * S))
    assert heard == []  # only POV parents need public trades
    pov = AlgoParams(participation_rate=Decimal("0.1"))
    first = await h.submit(algo=Algo.POV, client_order_id="pov-1", params=pov)
    second = await h.submit(algo=Algo.POV, client_order_id="pov-2", params=pov)
    assert heard == [frozenset({"BTCUSDT"})]  # the second parent of the same symbol changes nothing
    await h.engine.cancel("ACC-1", first.parent_order_id)
    assert heard == [frozenset({"BTCUSDT"})] and h.engine.pov_symbols() == {"BTCUSDT"}
    await h.engine.cancel("ACC-1", second.parent_order_id)
    assert heard == [frozenset({"BTCUSDT"}), frozenset()]
    assert h.engine.pov_symbols() == frozenset()


async def test_pov_with_a_duration_expires_at_its_end_time_once_its_children_are_done() -> None:
    h = Harness()
    parent = await h.submit(algo=Algo.POV, params=AlgoParams(duration_ns=5 * S, participation_rate=Decimal("0.5")))
    await h.clock.advance(1)
    h.engine.on_market_trade("BTCUSDT", Decimal("1"), T0 + S)
    await h.clock.advance(1)
    assert [q for _, q, _ in h.oms.submits] == [Decimal("0.5")]
    await h.clock.advance(4)
    assert status(parent) == ParentStatus.WORKING  # its child is still open
    await h.done("P1-1", "EXPIRED", 2)
    assert status(parent) == ParentStatus.EXPIRED
    assert not h.engine.wants_trades("BTCUSDT")


async def test_restart_rebuilds_parents_from_events_and_never_doubles_a_child() -> None:
    oms, ids = FakeOms(), Ids()
    first = Harness(oms=oms, ids=ids)
    # The CHILD_SENT of child 2 is lost (crash between the OMS answer and the publish).
    first.sink.fail = lambda event: event.parent.child_order_count >= 2
    await first.submit()
    await first.clock.advance(0.6)
    assert [cid for cid, _, _ in oms.submits] == ["P1-1", "P1-2"]
    await first.fill("P1-1", "F1", "0.25", "100", "FILLED", 2)
    await first.engine.stop()
    rebuilt = first.sink.latest()
    assert [(p.parent_order_id, p.status, p.child_order_count) for p in rebuilt] == [("P1", ParentStatus.WORKING, 1)]

    second = Harness(oms=oms, ids=ids)
    second.clock.now = first.clock.now
    second.engine.restore(rebuilt)
    await second.clock.advance(3)
    cids = [cid for cid, _, _ in oms.submits]
    assert cids == ["P1-1", "P1-2", "P1-3", "P1-4"]
    assert sum(c.quantity for c in oms.orders.values()) == Decimal(1)
    parent = second.engine.get("ACC-1", "P1")
    assert parent.cum_qty == Decimal("0.25") and parent.child_order_count == 4
    await second.fill("P1-1", "F1", "0.25", "100", "FILLED", 2)  # redelivered after the restart
    assert parent.cum_qty == Decimal("0.25")


async def test_events_of_a_child_sent_before_a_restart_are_adopted_from_the_event() -> None:
    h = Harness()
    parent = await h.submit(params=AlgoParams(duration_ns=60 * S, slice_count=2))
    await h.clock.advance(0)
    stranger = ChildOrder(
        n=7, client_order_id="P1-7", quantity=Decimal("0.1"), order_type="MARKET", time_in_force="IOC",
        limit_price=None, venue="", order_id="OMS-P1-7", status="FILLED", cum_qty=Decimal("0.1"),
        notional=Decimal("10"), version=3,
    )  # fmt: skip
    update = ChildUpdate("P1", "OMS-P1-7", "P1-7", 3, "FILLED", "F7", Decimal("0.1"), Decimal(100), snapshot=stranger)
    await h.engine.on_child_update(update)
    await h.engine.on_child_update(update)
    assert parent.cum_qty == Decimal("0.1") and parent.child_order_count == 7
    await h.clock.advance(30)
    assert h.oms.submits[-1][0] == "P1-8"
    assert sum(c.committed for c in parent.children) <= parent.quantity


async def _one_child_sent_then_stopped() -> Harness:
    """A TWAP parent whose first child went out, then exeq stopped."""
    first = Harness()
    await first.submit(quantity=Decimal("1"))
    await first.clock.advance(0)
    await first.engine.stop()
    assert [cid for cid, _, _ in first.oms.submits] == ["P1-1"]
    return first


async def _restarted(
    first: Harness, after_s: float = 0, instruments: dict[str, Instrument] | None = None
) -> ParentOrder:
    """A new exeq on the same OMS (and id sequence) that restores what the first one published, `after_s` later."""
    second = Harness(oms=first.oms, ids=first.ids, instruments=instruments)
    second.clock.now = first.clock.now + int(after_s * S)
    second.engine.restore(first.sink.latest())
    await second.clock.advance(0)
    return second.engine.get("ACC-1", "P1")


async def test_a_parent_resumed_after_its_end_time_expires_instead_of_sending_the_rest() -> None:
    first = await _one_child_sent_then_stopped()
    await first.done("P1-1", "EXPIRED", 2)  # the OMS saw it expire while exeq was down
    parent = await _restarted(first, after_s=10)
    assert [cid for cid, _, _ in first.oms.submits] == ["P1-1"]
    assert status(parent) == ParentStatus.EXPIRED


async def test_a_parent_resumed_without_its_instrument_fails_and_cancels_its_open_child() -> None:
    first = await _one_child_sent_then_stopped()
    parent = await _restarted(first, instruments={})  # BTCUSDT left the configuration meanwhile
    assert status(parent) == ParentStatus.FAILED
    assert parent.reason == "UNKNOWN_SYMBOL" and "BTCUSDT" in parent.reason_message
    assert [cid for cid, _, _ in first.oms.submits] == ["P1-1"]
    assert first.oms.cancels == ["OMS-P1-1"]


async def test_a_parent_whose_child_filled_while_exeq_was_down_completes_on_resume_without_its_instrument() -> None:
    first = Harness()
    await first.submit(algo=Algo.IMMEDIATE, params=AlgoParams(), quantity=Decimal("1"))
    await first.engine.stop()
    child = first.oms.orders["P1-1"]  # the OMS filled it meanwhile; exeq heard nothing
    child.version, child.status, child.cum_qty, child.notional = 2, "FILLED", Decimal(1), Decimal(100)
    with structlog.testing.capture_logs() as logs:
        parent = await _restarted(first, instruments={})
    assert status(parent) == ParentStatus.COMPLETED and parent.cum_qty == Decimal(1)
    assert [entry["event"] for entry in logs if entry["log_level"] in ("warning", "error")] == []


async def test_pov_resends_what_an_ioc_child_left_unfilled() -> None:
    h = Harness()
    parent = await h.submit(algo=Algo.POV, quantity=Decimal("1"), params=AlgoParams(participation_rate=Decimal("0.5")))
    h.engine.on_market_trade("BTCUSDT", Decimal("10"), T0 + S)
    await h.clock.settle()
    assert [q for _, q, _ in h.oms.submits] == [Decimal(1)]
    await h.fill("P1-1", "F1", "0.4", "100", "EXPIRED", 2)  # IOC: 0.6 left unfilled
    await h.clock.settle()
    assert [q for _, q, _ in h.oms.submits] == [Decimal(1), Decimal("0.6")]
    await h.fill("P1-2", "F2", "0.6", "100", "FILLED", 2)
    assert status(parent) == ParentStatus.COMPLETED and parent.cum_qty == Decimal(1)
