"""exeq parent orders through its gRPC API on the real NATS, with a fake OMS: a TWAP slices into children that sum
to the parent, child fills on ORDERS are aggregated once each, parent events land on EXEQ and a restarted exeq
rebuilds its parents from them without doubling a child."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import grpc
import pytest
from trade.exeq.v1 import events_pb2 as exeq_events_pb2
from trade.exeq.v1 import exeq_pb2, exeq_pb2_grpc
from trade.normalizer.v1 import events_pb2 as md_events_pb2
from trade.oms.v1 import events_pb2 as oms_events_pb2
from trade.oms.v1 import oms_pb2
from trade.type.v1 import decimal_pb2, fill_pb2, market_data_pb2, order_pb2

from services.runtime.bus import Bus
from services.runtime.status import bad_request, error_info, status_from_trailers
from services.runtime.streams import EXEQ, ORDERS
from tests.support.exeq_fakes import Fakes, delete_consumers, eventually, exeq_settings, start_exeq, unique
from tests.support.marketdata import md_message
from tests.support.mesh import MESH_EXEQ_CONSUMERS, mesh_copy_stopped

pytestmark = pytest.mark.usefixtures("mesh", "in_process_only")


@pytest.fixture(scope="module")
def in_process_only(mesh: None) -> Iterator[None]:
    """This module runs its own copy against the shared NATS: the mesh's exeq stay stopped meanwhile."""
    with mesh_copy_stopped("exeq", forget=MESH_EXEQ_CONSUMERS):
        yield


S = 1_000_000_000


class Case:
    def __init__(self) -> None:
        self.account, self.symbol, self.tag = unique("TEST-EXQ-"), unique("TEST"), unique("")
        self.fakes = Fakes()
        self.bus = Bus("nats://127.0.0.1:4222", "test-exeq-algos")


@pytest.fixture
async def case() -> AsyncIterator[Case]:
    c = Case()
    await c.fakes.start()
    await c.bus.connect()
    await c.bus.ensure_streams([ORDERS, EXEQ])
    yield c
    await c.bus.close()
    await c.fakes.stop()


def children(case: Case) -> list[oms_pb2.SubmitOrderRequest]:
    """The child orders submitted, once each (a retried submit carries the same client order id)."""
    first: dict[str, oms_pb2.SubmitOrderRequest] = {}
    for submit in case.fakes.oms.submits:
        first.setdefault(submit.client_order_id, submit)
    return list(first.values())


def twap_request(
    case: Case, quantity: str, duration_ns: int, slices: int, cid: str
) -> exeq_pb2.SubmitParentOrderRequest:
    return exeq_pb2.SubmitParentOrderRequest(
        account_id=case.account,
        symbol=case.symbol,
        client_order_id=cid,
        side=order_pb2.SIDE_BUY,
        quantity=decimal_pb2.Decimal(value=quantity),
        algo=exeq_events_pb2.EXECUTION_ALGO_TWAP,
        params=exeq_events_pb2.AlgoParams(duration_ns=duration_ns, slice_count=slices),
        strategy_id="strat-1",
    )


async def next_update(updates: Any) -> exeq_pb2.StreamParentOrderUpdatesResponse:
    message = await asyncio.wait_for(updates.read(), 5)
    assert isinstance(message, exeq_pb2.StreamParentOrderUpdatesResponse)
    return message


def fill_event(child: order_pb2.Order, fill_id: str, qty: str, price: str, version: int) -> oms_events_pb2.OrderEvent:
    order = order_pb2.Order()
    order.CopyFrom(child)
    order.status = order_pb2.ORDER_STATUS_FILLED
    order.version = version
    order.cum_qty.value = qty
    order.avg_price.value = price
    event = oms_events_pb2.OrderEvent(
        event_id=f"{child.order_id}:{version}",
        account_id=child.account_id,
        symbol=child.symbol,
        order_id=child.order_id,
        client_order_id=child.client_order_id,
        order_version=version,
        event_time_ns=time.time_ns(),
        order=order,
    )
    event.filled.fill.CopyFrom(
        fill_pb2.Fill(
            fill_id=fill_id,
            order_id=child.order_id,
            quantity=decimal_pb2.Decimal(value=qty),
            price=decimal_pb2.Decimal(value=price),
            parent_order_id=child.parent_order_id,
        )
    )
    return event


async def test_twap_children_sum_to_the_parent_fills_complete_it_and_a_restart_rebuilds_it(case: Case) -> None:
    settings = exeq_settings(case.fakes, case.account, case.symbol, case.tag)
    exeq, running = await start_exeq(settings)
    restarted = None
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = exeq_pb2_grpc.ExeqServiceStub(channel)
            updates = stub.StreamParentOrderUpdates(
                exeq_pb2.StreamParentOrderUpdatesRequest(account_id=case.account), timeout=20
            )
            first = await next_update(updates)  # a heartbeat: the subscription is live
            assert first.WhichOneof("payload") == "heartbeat"

            started = time.monotonic()
            response = await stub.SubmitParentOrder(twap_request(case, "1.000", 2 * S, 4, "twap-1"), timeout=5)
            parent = response.parent_order
            assert not response.replayed
            assert parent.status == exeq_events_pb2.PARENT_ORDER_STATUS_WORKING and parent.version == 1
            again = await stub.SubmitParentOrder(twap_request(case, "1.000", 2 * S, 4, "twap-1"), timeout=5)
            assert again.replayed and again.parent_order.parent_order_id == parent.parent_order_id

            await eventually(lambda: len(case.fakes.oms.submits) == 4, limit_s=6, what="4 child orders")
            elapsed = time.monotonic() - started
            assert 1.4 <= elapsed < 4.0  # the last slice is due 1.5 s after the start
            submits = case.fakes.oms.submits
            assert [s.client_order_id for s in submits] == [f"{parent.parent_order_id}-{n}" for n in range(1, 5)]
            assert all(s.parent_order_id == parent.parent_order_id and s.strategy_id == "strat-1" for s in submits)
            assert sum(Decimal(s.spec.quantity.value) for s in submits) == Decimal(1)
            assert {s.spec.order_type for s in submits} == {order_pb2.ORDER_TYPE_MARKET}

            children = (
                await stub.ListChildOrders(
                    exeq_pb2.ListChildOrdersRequest(account_id=case.account, parent_order_id=parent.parent_order_id),
                    timeout=5,
                )
            ).orders
            assert [c.client_order_id for c in children] == [s.client_order_id for s in submits]

            events: list[exeq_events_pb2.ParentOrderEvent] = []
            while len(events) < 5:
                message = await next_update(updates)
                if message.WhichOneof("payload") == "event":
                    events.append(message.event)
            assert [e.type for e in events] == [exeq_events_pb2.PARENT_ORDER_EVENT_TYPE_ACCEPTED] + [
                exeq_events_pb2.PARENT_ORDER_EVENT_TYPE_CHILD_SENT
            ] * 4
            assert [e.event_id for e in events] == [f"{parent.parent_order_id}:{v}" for v in range(1, 6)]

            # Fills of every child, each published twice under different msg ids (one redelivered duplicate).
            oms_orders = [case.fakes.oms.orders[(case.account, s.client_order_id)] for s in submits]
            for i, child in enumerate(oms_orders):
                event = fill_event(child, f"FILL-{case.tag}-{i}", "0.25", str(100 + i), 2)
                subject = f"orders.{case.account}.{case.symbol}"
                await case.bus.publish(subject, event.SerializeToString(), event.event_id)
                await case.bus.publish(subject, event.SerializeToString(), event.event_id + ":again")

            async def completed() -> exeq_pb2.GetParentOrderResponse:
                request = exeq_pb2.GetParentOrderRequest(
                    account_id=case.account, parent_order_id=parent.parent_order_id
                )
                return await stub.GetParentOrder(request, timeout=5)

            deadline = time.monotonic() + 10
            while (got := await completed()).parent_order.status != exeq_events_pb2.PARENT_ORDER_STATUS_COMPLETED:
                assert time.monotonic() < deadline, got
                await asyncio.sleep(0.05)
            await eventually(lambda: exeq.child_source.health.messages >= 8, what="all fill events consumed")
            done = (await completed()).parent_order
            assert (done.cum_qty.value, done.leaves_qty.value, done.avg_price.value) == ("1", "0", "101.5")
            assert done.child_order_count == 4

        await running.stop()
        restarted, running = await start_exeq(settings)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = exeq_pb2_grpc.ExeqServiceStub(channel)
            request = exeq_pb2.GetParentOrderRequest(account_id=case.account, parent_order_id=parent.parent_order_id)
            rebuilt = (await stub.GetParentOrder(request, timeout=5)).parent_order
            assert rebuilt.status == exeq_events_pb2.PARENT_ORDER_STATUS_COMPLETED
            assert (rebuilt.cum_qty.value, rebuilt.version) == ("1", done.version)
            listed = await stub.ListParentOrders(exeq_pb2.ListParentOrdersRequest(account_id=case.account), timeout=5)
            assert [p.parent_order_id for p in listed.parent_orders] == [parent.parent_order_id]
            replay = await stub.SubmitParentOrder(twap_request(case, "1.000", 2 * S, 4, "twap-1"), timeout=5)
            assert replay.replayed
        await asyncio.sleep(0.3)
        assert len(case.fakes.oms.submits) == 4  # nothing re-sent after the restart
    finally:
        await running.stop()
        await delete_consumers(restarted or exeq)


async def test_invalid_parent_orders_are_refused_with_field_violations(case: Case) -> None:
    exeq, running = await start_exeq(exeq_settings(case.fakes, case.account, case.symbol, case.tag))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = exeq_pb2_grpc.ExeqServiceStub(channel)
            request = twap_request(case, "1.0005", 0, 4, "bad-1")
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.SubmitParentOrder(request, timeout=5)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            status = status_from_trailers(err.value.trailing_metadata())
            assert status is not None
            info, bad = error_info(status), bad_request(status)
            assert info is not None and info.reason == "VALIDATION_FAILED"
            assert bad is not None and {v.field for v in bad.field_violations} == {"quantity", "params.duration_ns"}

            pov = exeq_pb2.SubmitParentOrderRequest(
                account_id=case.account,
                symbol=case.symbol,
                client_order_id="bad-2",
                side=order_pb2.SIDE_SELL,
                quantity=decimal_pb2.Decimal(value="1"),
                algo=exeq_events_pb2.EXECUTION_ALGO_POV,
                params=exeq_events_pb2.AlgoParams(participation_rate=decimal_pb2.Decimal(value="1.5")),
            )
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.SubmitParentOrder(pov, timeout=5)
            status = status_from_trailers(err.value.trailing_metadata())
            bad = bad_request(status) if status is not None else None
            assert bad is not None and [v.field for v in bad.field_violations] == ["params.participation_rate"]

            missing = exeq_pb2.GetParentOrderRequest(account_id=case.account, parent_order_id="nope")
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.GetParentOrder(missing, timeout=5)
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert case.fakes.oms.submits == []
    finally:
        await running.stop()
        await delete_consumers(exeq)


async def test_cancel_parent_stops_the_schedule_and_cancels_its_open_child(case: Case) -> None:
    exeq, running = await start_exeq(exeq_settings(case.fakes, case.account, case.symbol, case.tag))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = exeq_pb2_grpc.ExeqServiceStub(channel)
            parent = (
                await stub.SubmitParentOrder(twap_request(case, "2", 60 * S, 4, "twap-cancel"), timeout=5)
            ).parent_order
            await eventually(lambda: len(case.fakes.oms.submits) == 1, what="first child")
            canceled = await stub.CancelParentOrder(
                exeq_pb2.CancelParentOrderRequest(account_id=case.account, parent_order_id=parent.parent_order_id),
                timeout=5,
            )
            assert canceled.parent_order.status == exeq_events_pb2.PARENT_ORDER_STATUS_CANCELING
            child = case.fakes.oms.orders[(case.account, f"{parent.parent_order_id}-1")]
            assert [c.order_id for c in case.fakes.oms.cancels] == [child.order_id]
    finally:
        await running.stop()
        await delete_consumers(exeq)


async def test_pov_parent_follows_public_trades_of_its_symbol(case: Case) -> None:
    exeq, running = await start_exeq(exeq_settings(case.fakes, case.account, case.symbol, case.tag))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = exeq_pb2_grpc.ExeqServiceStub(channel)
            request = exeq_pb2.SubmitParentOrderRequest(
                account_id=case.account,
                symbol=case.symbol,
                client_order_id="pov-1",
                side=order_pb2.SIDE_SELL,
                quantity=decimal_pb2.Decimal(value="1"),
                algo=exeq_events_pb2.EXECUTION_ALGO_POV,
                params=exeq_events_pb2.AlgoParams(participation_rate=decimal_pb2.Decimal(value="0.25")),
            )
            assert case.symbol not in exeq.trades.symbols
            parent = (await stub.SubmitParentOrder(request, timeout=5)).parent_order
            # Only the symbols of working POV parents are subscribed to: this one now, not other symbols' trades.
            await eventually(lambda: exeq.trades.symbols == {case.symbol}, what="trades of the POV symbol subscribed")
            seq = 0

            def trade(qty: str) -> md_events_pb2.MarketDataEvent:
                nonlocal seq
                seq += 1
                return md_events_pb2.MarketDataEvent(
                    event_id=f"trade:{case.symbol}:{seq}",
                    publish_time_ns=time.time_ns(),
                    trade=market_data_pb2.Trade(
                        symbol=case.symbol,
                        quantity=decimal_pb2.Decimal(value=qty),
                        price=decimal_pb2.Decimal(value="100"),
                        sequence=seq,
                        event_time_ns=time.time_ns(),
                    ),
                )

            # The second message carries two trades: POV counts the volume of both (0.2 in all).
            for n, trades in enumerate([[trade("1")], [trade("0.15"), trade("0.05")], [trade("100")]], start=1):
                msg_id = f"{trades[0].event_id}+{len(trades)}"
                await case.bus.publish(f"md.trade.{case.symbol}", md_message(*trades), msg_id)
                if n < 3:  # each child answers one message: two messages seen together would make one child
                    await eventually(lambda n=n: len(children(case)) == n, what=f"POV child {n}")
            await eventually(lambda: len(children(case)) == 3, what="POV children")
            quantities = [Decimal(s.spec.quantity.value) for s in children(case)]
            assert quantities == [Decimal("0.25"), Decimal("0.05"), Decimal("0.7")]
            assert all(s.parent_order_id == parent.parent_order_id for s in case.fakes.oms.submits)
    finally:
        await running.stop()
        await delete_consumers(exeq)
