"""The OMS in-process (composition root) against the real NATS/JetStream, with a fake risk gRPC server:
accepted events on ORDERS, venue reports from EXEC driving the order to FILLED, the order and fill streams,
idempotent SubmitOrder (retries and races), a rebuild from the streams after a stop, and the kill switch."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import pytest
from trade.live_gateway.v1 import events_pb2 as exec_pb2
from trade.oms.v1 import events_pb2, oms_pb2, oms_pb2_grpc
from trade.risk.v1 import events_pb2 as risk_events_pb2
from trade.risk.v1 import risk_pb2, risk_pb2_grpc
from trade.type.v1 import decimal_pb2, errors_pb2, fill_pb2, order_pb2, venue_pb2

from services.oms.adapters.snapshot import BUCKET, JournalSnapshots
from services.oms.bootstrap import SERVICE_NAME, OmsApp, compose
from services.oms.settings import OmsSettings
from services.runtime.bus import Bus
from services.runtime.server import Registration, RunningServer, start_server
from services.runtime.settings import infra_url
from services.runtime.snapshots import SnapshotStore
from services.runtime.status import error_info, status_from_trailers
from services.runtime.streams import EXEC, ORDERS, RISK
from tests.support.mesh import MESH_EXEQ_CONSUMERS, mesh_copy_stopped

pytestmark = pytest.mark.usefixtures("mesh", "in_process_only")


@pytest.fixture(scope="module")
def in_process_only(mesh: None) -> Iterator[None]:
    """This module runs its own copy against the shared NATS: the mesh's OMS and exeq stay stopped meanwhile."""
    with mesh_copy_stopped("oms", "exeq", forget=MESH_EXEQ_CONSUMERS):
        yield


TIMEOUT = 5.0
SYMBOL = "BTCUSDT"
T = TypeVar("T")


class FakeRisk(risk_pb2_grpc.RiskServiceServicer):
    """Approves everything except orders of accounts listed in `reject`."""

    def __init__(self) -> None:
        self.reject: set[str] = set()
        self.calls = 0

    async def CheckOrder(self, request: risk_pb2.CheckOrderRequest, context: Any) -> risk_pb2.CheckOrderResponse:
        self.calls += 1
        check_id = f"chk-{uuid.uuid4().hex[:8]}"
        if request.account_id in self.reject:
            violation = risk_pb2.RiskViolation(reason=errors_pb2.ERROR_REASON_RISK_MAX_NOTIONAL, message="too big")
            return risk_pb2.CheckOrderResponse(approved=False, violations=[violation], check_id=check_id)
        return risk_pb2.CheckOrderResponse(approved=True, check_id=check_id)


@dataclass
class Env:
    risk: FakeRisk
    risk_port: int
    bus: Bus


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[Env]:
    risk = FakeRisk()  # type: ignore[abstract]
    server = grpc.aio.server()
    risk_pb2_grpc.add_RiskServiceServicer_to_server(risk, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    bus = Bus(infra_url("nats", "nats"), "oms-test")
    await bus.connect()
    await bus.ensure_streams([ORDERS, EXEC, RISK])
    try:
        yield Env(risk, port, bus)
    finally:
        await bus.close()
        await server.stop(0)


class RunningOms:
    def __init__(self, app: OmsApp, server: RunningServer) -> None:
        self.app = app
        self.server = server
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
        self.stub = oms_pb2_grpc.OmsServiceStub(self.channel)

    async def stop(self) -> None:
        await self.channel.close()
        await self.server.stop()


def settings_for(env: Env, account: str, **overrides: Any) -> OmsSettings:
    return OmsSettings(
        **overrides,
        port=0,
        log_json=False,
        shutdown_grace_s=0.5,
        risk_target=f"127.0.0.1:{env.risk_port}",
        orders_filter=f"orders.{account}.>",
        exec_durable=f"oms-exec-{account}",
        exec_filter=f"exec.*.{account}",
        killswitch_durable=f"oms-ks-{account}",
        killswitch_filter=f"risk.killswitch.account.{account}",
        stream_heartbeat_s=0.5,
    )


async def start_oms(env: Env, account: str, **overrides: Any) -> RunningOms:
    app = compose(settings_for(env, account, **overrides))
    registration = Registration(
        add_to_server=lambda server: oms_pb2_grpc.add_OmsServiceServicer_to_server(app.servicer, server),
        service_names=[SERVICE_NAME],
        on_start=[app.start],
        on_stop=[app.stop],
    )
    return RunningOms(app, await start_server(app.settings, registration))


@pytest.fixture
async def account(env: Env) -> AsyncIterator[str]:
    acct = f"oms-{uuid.uuid4().hex[:10]}"
    yield acct
    for stream, durable in ((EXEC.name, f"oms-exec-{acct}"), (RISK.name, f"oms-ks-{acct}")):
        with contextlib.suppress(Exception):
            await env.bus.js.delete_consumer(stream, durable)


def dec(value: str) -> decimal_pb2.Decimal:
    return decimal_pb2.Decimal(value=value)


def submit_request(account: str, coid: str, qty: str = "2") -> oms_pb2.SubmitOrderRequest:
    spec = order_pb2.OrderSpec(
        side=order_pb2.SIDE_BUY, order_type=order_pb2.ORDER_TYPE_LIMIT, quantity=dec(qty), limit_price=dec("100")
    )
    return oms_pb2.SubmitOrderRequest(account_id=account, symbol=SYMBOL, client_order_id=coid, spec=spec)


def report(
    order: order_pb2.Order, n: int, exec_type: exec_pb2.ExecType.ValueType, qty: str = "", price: str = "100"
) -> exec_pb2.ExecutionReport:
    rep = exec_pb2.ExecutionReport(
        report_id=f"rep-{order.order_id}-{n}",
        venue=venue_pb2.VENUE_PRISM,
        account_id=order.account_id,
        symbol=order.symbol,
        order_id=order.order_id,
        client_order_id=order.client_order_id,
        venue_order_id=f"V-{order.order_id}",
        exec_type=exec_type,
        event_time_ns=time.time_ns(),
    )
    if qty:
        rep.fill.CopyFrom(
            fill_pb2.Fill(
                fill_id=f"prism:T{n}:V-{order.order_id}",
                order_id=order.order_id,
                account_id=order.account_id,
                symbol=order.symbol,
                price=dec(price),
                quantity=dec(qty),
                fee=dec("0.01"),
                fee_currency="USDT",
                venue=venue_pb2.VENUE_PRISM,
                event_time_ns=time.time_ns(),
            )
        )
    return rep


async def publish_report(env: Env, rep: exec_pb2.ExecutionReport) -> None:
    await env.bus.publish(f"exec.prism.{rep.account_id}", rep.SerializeToString(), msg_id=rep.report_id)


async def eventually(probe: Callable[[], Awaitable[T | None]], limit_s: float = TIMEOUT) -> T:
    deadline = time.monotonic() + limit_s
    while True:
        value = await probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def get_order(oms: RunningOms, account: str, order_id: str) -> order_pb2.Order:
    response = await oms.stub.GetOrder(oms_pb2.GetOrderRequest(account_id=account, order_id=order_id), timeout=TIMEOUT)
    return response.order


async def order_events(env: Env, account: str) -> list[tuple[events_pb2.OrderEvent, str]]:
    """Every ORDERS event of the account with its Nats-Msg-Id."""
    sub = await env.bus.js.subscribe(f"orders.{account}.>", stream=ORDERS.name, ordered_consumer=True)
    out: list[tuple[events_pb2.OrderEvent, str]] = []
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=0.5)
            except TimeoutError:
                return out
            out.append((events_pb2.OrderEvent.FromString(msg.data), (msg.headers or {}).get("Nats-Msg-Id", "")))
            if msg.metadata.num_pending == 0:
                return out
    finally:
        await sub.unsubscribe()


async def collect(stream: Any, want: Callable[[list[Any]], bool], limit_s: float = TIMEOUT) -> list[Any]:
    items: list[Any] = []

    async def read() -> None:
        while not want(items):
            items.append(await stream.read())

    await asyncio.wait_for(read(), limit_s)
    return items


async def test_submit_then_exec_reports_fill_the_order_and_stream_it(env: Env, account: str) -> None:
    oms = await start_oms(env, account)
    try:
        fills_stream = oms.stub.StreamFills(oms_pb2.StreamFillsRequest(account_id=account))
        updates = oms.stub.StreamOrderUpdates(
            oms_pb2.StreamOrderUpdatesRequest(account_id=account, include_open_orders=True)
        )
        first: oms_pb2.StreamOrderUpdatesResponse = await asyncio.wait_for(updates.read(), TIMEOUT)  # type: ignore[arg-type]
        assert first.WhichOneof("payload") == "snapshot" and not first.snapshot.orders
        submitted = await oms.stub.SubmitOrder(submit_request(account, "c-fill"), timeout=TIMEOUT)
        order = submitted.order
        assert order.status == order_pb2.ORDER_STATUS_PENDING_NEW and not submitted.replayed
        [(event, msg_id)] = await order_events(env, account)
        assert event.WhichOneof("event") == "accepted" and msg_id == f"{order.order_id}:1" == event.event_id

        await publish_report(env, report(order, 1, exec_pb2.EXEC_TYPE_NEW))
        await publish_report(env, report(order, 2, exec_pb2.EXEC_TYPE_TRADE, "0.5", "100"))
        await publish_report(env, report(order, 2, exec_pb2.EXEC_TYPE_TRADE, "0.5", "100"))  # re-delivered
        await publish_report(env, report(order, 3, exec_pb2.EXEC_TYPE_TRADE, "1.5", "104"))

        async def filled() -> order_pb2.Order | None:
            got = await get_order(oms, account, order.order_id)
            return got if got.status == order_pb2.ORDER_STATUS_FILLED else None

        done = await eventually(filled)
        assert (done.cum_qty.value, done.leaves_qty.value, done.avg_price.value) == ("2", "0", "103")
        assert done.version == 4
        fills = await collect(fills_stream, lambda items: sum(i.HasField("fill") for i in items) >= 2)
        assert [f.fill.quantity.value for f in fills if f.HasField("fill")] == ["0.5", "1.5"]
        events = await collect(updates, lambda items: sum(i.HasField("event") for i in items) >= 4)
        kinds = [i.event.WhichOneof("event") for i in events if i.HasField("event")]
        assert kinds == ["accepted", "acknowledged", "filled", "filled"]
        listed = await oms.stub.ListFills(oms_pb2.ListFillsRequest(account_id=account), timeout=TIMEOUT)
        assert [f.quantity.value for f in listed.fills] == ["1.5", "0.5"]
        fills_stream.cancel()
        updates.cancel()
    finally:
        await oms.stop()


async def test_submit_retried_and_raced_creates_exactly_one_order(env: Env, account: str) -> None:
    oms = await start_oms(env, account)
    try:
        request = submit_request(account, "c-dup")
        first = await oms.stub.SubmitOrder(request, timeout=TIMEOUT)
        sequential = [await oms.stub.SubmitOrder(request, timeout=TIMEOUT) for _ in range(3)]
        raced = await asyncio.gather(
            *(oms.stub.SubmitOrder(submit_request(account, "c-race"), timeout=TIMEOUT) for _ in range(10))
        )
        assert all(r.replayed and r.order.order_id == first.order.order_id for r in sequential)
        assert len({r.order.order_id for r in raced}) == 1 and sum(not r.replayed for r in raced) == 1
        events = await order_events(env, account)
        assert sorted(e.client_order_id for e, _ in events) == ["c-dup", "c-race"]
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await oms.stub.SubmitOrder(submit_request(account, "c-dup", qty="3"), timeout=TIMEOUT)
        assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    finally:
        await oms.stop()


async def test_restart_rebuilds_identical_orders_and_fills_and_resumes_exec(env: Env, account: str) -> None:
    oms = await start_oms(env, account)
    try:
        a = (await oms.stub.SubmitOrder(submit_request(account, "c-a"), timeout=TIMEOUT)).order
        b = (await oms.stub.SubmitOrder(submit_request(account, "c-b"), timeout=TIMEOUT)).order
        await publish_report(env, report(a, 1, exec_pb2.EXEC_TYPE_NEW))
        await publish_report(env, report(a, 2, exec_pb2.EXEC_TYPE_TRADE, "1", "100"))
        await oms.stub.CancelOrder(oms_pb2.CancelOrderRequest(account_id=account, order_id=b.order_id), timeout=5)

        async def partly() -> order_pb2.Order | None:
            got = await get_order(oms, account, a.order_id)
            return got if got.cum_qty.value == "1" else None

        await eventually(partly)
        before = await oms.stub.ListOrders(oms_pb2.ListOrdersRequest(account_id=account), timeout=TIMEOUT)
        fills_before = await oms.stub.ListFills(oms_pb2.ListFillsRequest(account_id=account), timeout=TIMEOUT)
    finally:
        await oms.stop()
    # While the OMS is down: the last fill of a, and a re-delivery of a fill it already applied.
    await publish_report(env, report(a, 2, exec_pb2.EXEC_TYPE_TRADE, "1", "100"))
    await publish_report(env, report(a, 3, exec_pb2.EXEC_TYPE_TRADE, "1", "102"))
    oms = await start_oms(env, account)
    try:
        assert oms.app.oms.ready
        # Versions 1..3 of each order are what was there before the stop.
        after_restart = await oms.stub.ListOrders(oms_pb2.ListOrdersRequest(account_id=account), timeout=TIMEOUT)
        by_id = {o.order_id: o for o in after_restart.orders}
        for old in before.orders:
            assert by_id[old.order_id].version >= old.version
        assert by_id[b.order_id] == next(o for o in before.orders if o.order_id == b.order_id)

        async def filled() -> order_pb2.Order | None:
            got = await get_order(oms, account, a.order_id)
            return got if got.status == order_pb2.ORDER_STATUS_FILLED else None

        done = await eventually(filled)
        assert (done.cum_qty.value, done.avg_price.value, done.version) == ("2", "101", 4)
        fills_after = await oms.stub.ListFills(oms_pb2.ListFillsRequest(account_id=account), timeout=TIMEOUT)
        assert list(fills_after.fills)[1:] == list(fills_before.fills)
        assert len(fills_after.fills) == 2
        replay = await oms.stub.SubmitOrder(submit_request(account, "c-a"), timeout=TIMEOUT)
        assert replay.replayed and replay.order == done
    finally:
        await oms.stop()
    # A third OMS sees exactly what the second one ended with.
    oms = await start_oms(env, account)
    try:
        again = await oms.stub.ListOrders(oms_pb2.ListOrdersRequest(account_id=account), timeout=TIMEOUT)
        assert {o.order_id: o for o in again.orders}[a.order_id] == done
        assert len(await order_events(env, account)) == 2 + 3 + 1
    finally:
        await oms.stop()


async def test_kill_switch_event_requests_cancel_of_open_orders(env: Env, account: str) -> None:
    oms = await start_oms(env, account)
    try:
        orders = [
            (await oms.stub.SubmitOrder(submit_request(account, f"c-ks-{i}"), timeout=TIMEOUT)).order for i in range(3)
        ]
        event = risk_events_pb2.KillSwitchEvent(
            event_id=uuid.uuid4().hex,
            action=risk_events_pb2.KILL_SWITCH_ACTION_ENGAGED,
            scope=risk_events_pb2.KILL_SWITCH_SCOPE_ACCOUNT,
            account_id=account,
            actor="risk-manager",
            reason="test halt",
            event_time_ns=time.time_ns(),
        )
        await env.bus.publish(f"risk.killswitch.account.{account}", event.SerializeToString(), msg_id=event.event_id)

        async def all_pending_cancel() -> list[order_pb2.Order] | None:
            got = [await get_order(oms, account, o.order_id) for o in orders]
            return got if all(o.status == order_pb2.ORDER_STATUS_PENDING_CANCEL for o in got) else None

        canceled = await eventually(all_pending_cancel)
        assert {o.reason for o in canceled} == {errors_pb2.ERROR_REASON_RISK_KILL_SWITCH}
        events = await order_events(env, account)
        requested = [e for e, _ in events if e.WhichOneof("event") == "cancel_requested"]
        assert len(requested) == 3 and {e.cancel_requested.requested_by for e in requested} == {"kill-switch"}
    finally:
        await oms.stop()


def _principal_metadata(accounts: list[str]) -> tuple[tuple[str, str], ...]:
    payload = json.dumps({"sub": "u-other", "roles": ["trader"], "accounts": accounts}).encode()
    return (("x-jwt-payload", base64.urlsafe_b64encode(payload).decode().rstrip("=")),)


async def test_risk_rejection_and_foreign_cancel_by_order_id(env: Env, account: str) -> None:
    oms = await start_oms(env, account)
    try:
        env.risk.reject.add(account)
        rejected = await oms.stub.SubmitOrder(submit_request(account, "c-rej"), timeout=TIMEOUT)
        assert rejected.order.status == order_pb2.ORDER_STATUS_REJECTED
        assert rejected.order.reason == errors_pb2.ERROR_REASON_RISK_MAX_NOTIONAL
        env.risk.reject.discard(account)
        order = (await oms.stub.SubmitOrder(submit_request(account, "c-own"), timeout=TIMEOUT)).order
        request = oms_pb2.CancelOrderRequest(account_id=account, order_id=order.order_id)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await oms.stub.CancelOrder(request, timeout=TIMEOUT, metadata=_principal_metadata(["someone-else"]))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        status = status_from_trailers(err.value.trailing_metadata())
        assert status is not None and (info := error_info(status)) is not None and info.reason == "ORDER_NOT_FOUND"
        mine = await oms.stub.CancelOrder(request, timeout=TIMEOUT, metadata=_principal_metadata([account]))
        assert mine.order.status == order_pb2.ORDER_STATUS_PENDING_CANCEL
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await oms.stub.CancelOrder(
                oms_pb2.CancelOrderRequest(account_id=account, order_id=rejected.order.order_id), timeout=TIMEOUT
            )
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        await oms.stop()


class CrashAfterAppend:
    """The journal appends, then the process 'dies' before it can apply the event or reply."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def append(self, change: Any) -> Any:
        await self.inner.append(change)
        raise ConnectionError("killed between the journal's ack and the reply")


async def test_crash_between_append_and_reply_never_doubles_the_order(env: Env, account: str) -> None:
    oms = await start_oms(env, account)
    oms.app.oms.journal = CrashAfterAppend(oms.app.oms.journal)
    try:
        with pytest.raises(grpc.aio.AioRpcError):
            await oms.stub.SubmitOrder(submit_request(account, "c-crash"), timeout=TIMEOUT)
    finally:
        await oms.app.bus.nc.close()  # no graceful drain: the process is gone
        await oms.stop()
    oms = await start_oms(env, account)
    try:
        retry = await oms.stub.SubmitOrder(submit_request(account, "c-crash"), timeout=TIMEOUT)
        assert retry.replayed and retry.order.status == order_pb2.ORDER_STATUS_PENDING_NEW
        assert [e.client_order_id for e, _ in await order_events(env, account)] == ["c-crash"]
    finally:
        await oms.stop()


async def test_an_event_memory_missed_is_caught_up_when_its_order_gets_a_report(env: Env, account: str) -> None:
    oms = await start_oms(env, account)
    try:
        sub = oms.app.follower._sub
        assert sub is not None
        await sub.unsubscribe()  # the live follower stalls
        real = oms.app.oms.journal
        oms.app.oms.journal = CrashAfterAppend(real)
        with pytest.raises(grpc.aio.AioRpcError):
            await oms.stub.SubmitOrder(submit_request(account, "c-missed"), timeout=TIMEOUT)
        oms.app.oms.journal = real
        [(accepted, _)] = await order_events(env, account)
        assert oms.app.oms.book.get(accepted.order_id) is None
        await publish_report(env, report(accepted.order, 1, exec_pb2.EXEC_TYPE_NEW))

        async def acknowledged() -> order_pb2.Order | None:
            got = oms.app.oms.book.get(accepted.order_id)
            if got is None or got.venue_order_id == "":
                return None
            return await get_order(oms, account, accepted.order_id)

        got = await eventually(acknowledged)
        assert got.status == order_pb2.ORDER_STATUS_NEW and got.version == 2
    finally:
        await oms.stop()


async def test_restart_from_a_snapshot_replays_only_the_journal_beyond_it_and_ends_identical(
    env: Env, account: str
) -> None:
    snapshotting = {"snapshot_min_orders": 1}
    store = SnapshotStore(env.bus, BUCKET)
    name = JournalSnapshots(env.bus, store, ORDERS.name, f"orders.{account}.>").name
    oms = await start_oms(env, account, **snapshotting)
    try:
        a = (await oms.stub.SubmitOrder(submit_request(account, "c-a"), timeout=TIMEOUT)).order
        b = (await oms.stub.SubmitOrder(submit_request(account, "c-b"), timeout=TIMEOUT)).order
        c = (await oms.stub.SubmitOrder(submit_request(account, "c-c"), timeout=TIMEOUT)).order
        await publish_report(env, report(a, 1, exec_pb2.EXEC_TYPE_NEW))
        await publish_report(env, report(a, 2, exec_pb2.EXEC_TYPE_TRADE, "1", "100"))
        await publish_report(env, report(c, 1, exec_pb2.EXEC_TYPE_NEW))
        await oms.stub.CancelOrder(oms_pb2.CancelOrderRequest(account_id=account, order_id=b.order_id), timeout=5)

        async def settled() -> bool | None:
            got = await get_order(oms, account, a.order_id)
            acked = await get_order(oms, account, c.order_id)
            return True if got.cum_qty.value == "1" and acked.status == order_pb2.ORDER_STATUS_NEW else None

        await eventually(settled)
        # An amend waiting for the venue: its spec, and the submitted one, survive the snapshot.
        amend = oms_pb2.AmendOrderRequest(account_id=account, symbol=SYMBOL, order_id=c.order_id, new_quantity=dec("3"))
        await oms.stub.AmendOrder(amend, timeout=TIMEOUT)
        at_stop = oms.app.oms.book.contents()
        events_at_stop = len(await order_events(env, account))
    finally:
        await oms.stop()  # writes the snapshot
    try:
        assert await store.load(name) is not None
        # A second OMS without snapshots moves the journal on: the last fill of a arrives, the amend is replaced.
        await publish_report(env, report(a, 3, exec_pb2.EXEC_TYPE_TRADE, "1", "102"))
        replaced = report(c, 2, exec_pb2.EXEC_TYPE_REPLACED)
        await publish_report(env, replaced)
        oms = await start_oms(env, account, snapshots=False)
        try:
            assert oms.app.follower.read == oms.app.follower.replayed == events_at_stop

            async def moved_on() -> bool | None:
                done = await get_order(oms, account, a.order_id)
                amended = await get_order(oms, account, c.order_id)
                return (
                    True if done.status == order_pb2.ORDER_STATUS_FILLED and amended.leaves_qty.value == "3" else None
                )

            await eventually(moved_on)
            expected = oms.app.oms.book.contents()
            tail = len(await order_events(env, account)) - events_at_stop
        finally:
            await oms.stop()
        assert tail == 2 and expected != at_stop

        # From the snapshot, then the two events beyond it: the same memory as the OMS that wrote them.
        oms = await start_oms(env, account, **snapshotting)
        try:
            assert oms.app.follower.read == oms.app.follower.replayed == tail
            assert oms.app.oms.book.contents() == expected
            replay = await oms.stub.SubmitOrder(submit_request(account, "c-a"), timeout=TIMEOUT)
            assert replay.replayed and replay.order.status == order_pb2.ORDER_STATUS_FILLED
        finally:
            await oms.stop()
    finally:
        with contextlib.suppress(Exception):
            await (await env.bus.js.object_store(BUCKET)).delete(name)
