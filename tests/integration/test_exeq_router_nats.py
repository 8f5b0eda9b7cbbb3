"""exeq's router on the real NATS: accepted OMS orders on JetStream ORDERS reach the live-gateway's PlaceOrder
exactly once (republished under another msg id, redelivered by JetStream, or after UNAVAILABLE answers), and
cancel / replace requests reach CancelOrder / AmendOrder."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from trade.oms.v1 import events_pb2 as oms_events_pb2
from trade.type.v1 import decimal_pb2, order_pb2, venue_pb2

from services.runtime.bus import Bus
from services.runtime.streams import ORDERS
from tests.support.exeq_fakes import Fakes, delete_consumers, eventually, exeq_settings, start_exeq, unique
from tests.support.mesh import MESH_EXEQ_CONSUMERS, mesh_copy_stopped

pytestmark = pytest.mark.usefixtures("mesh", "in_process_only")


@pytest.fixture(scope="module")
def in_process_only(mesh: None) -> Iterator[None]:
    """This module runs its own copy against the shared NATS: the mesh's exeq stay stopped meanwhile."""
    with mesh_copy_stopped("exeq", forget=MESH_EXEQ_CONSUMERS):
        yield


def order_event(account: str, symbol: str, order_id: str, version: int, kind: str) -> oms_events_pb2.OrderEvent:
    spec = order_pb2.OrderSpec(
        side=order_pb2.SIDE_BUY,
        order_type=order_pb2.ORDER_TYPE_LIMIT,
        quantity=decimal_pb2.Decimal(value="0.5"),
        limit_price=decimal_pb2.Decimal(value="100.25"),
        time_in_force=order_pb2.TIME_IN_FORCE_GTC,
    )
    event = oms_events_pb2.OrderEvent(
        event_id=f"{order_id}:{version}",
        account_id=account,
        symbol=symbol,
        order_id=order_id,
        client_order_id=f"client-{order_id}",
        order_version=version,
        event_time_ns=time.time_ns(),
        order=order_pb2.Order(
            order_id=order_id,
            client_order_id=f"client-{order_id}",
            account_id=account,
            symbol=symbol,
            spec=spec,
            status=order_pb2.ORDER_STATUS_PENDING_NEW,
            venue=venue_pb2.VENUE_UNSPECIFIED,
            version=version,
        ),
    )
    if kind == "replace_requested":
        new_spec = order_pb2.OrderSpec()
        new_spec.CopyFrom(spec)
        new_spec.quantity.value = "0.75"
        event.replace_requested.new_spec.CopyFrom(new_spec)
    else:
        getattr(event, kind).SetInParent()
    return event


class Case:
    def __init__(self) -> None:
        self.account, self.symbol, self.tag = unique("TEST-EXQ-"), unique("TEST"), unique("")
        self.fakes = Fakes()
        self.bus = Bus("nats://127.0.0.1:4222", "test-exeq-router")

    def order_id(self, n: int) -> str:
        """Unique per test run: ORDERS deduplicates msg ids ("<order_id>:<version>") for 24 hours."""
        return f"ORD-{self.tag}-{n}"

    async def publish(self, event: oms_events_pb2.OrderEvent, msg_id: str) -> None:
        await self.bus.publish(f"orders.{event.account_id}.{event.symbol}", event.SerializeToString(), msg_id)


@pytest.fixture
async def case() -> AsyncIterator[Case]:
    c = Case()
    await c.fakes.start()
    await c.bus.connect()
    await c.bus.ensure_streams([ORDERS])
    yield c
    await c.bus.close()
    await c.fakes.stop()


async def test_accepted_order_is_placed_once_then_cancel_and_amend_are_routed(case: Case) -> None:
    exeq, running = await start_exeq(exeq_settings(case.fakes, case.account, case.symbol, case.tag))
    try:
        accepted = order_event(case.account, case.symbol, case.order_id(1), 1, "accepted")
        await case.publish(accepted, accepted.event_id)
        await case.publish(accepted, accepted.event_id)  # JetStream drops it (same msg id)
        await case.publish(accepted, accepted.event_id + ":republished")  # stored again, under another id
        await eventually(lambda: len(case.fakes.gateway.places) >= 1, what="PlaceOrder")
        place = case.fakes.gateway.places[0]
        assert (place.order_id, place.account_id, place.symbol) == (case.order_id(1), case.account, case.symbol)
        assert place.venue == venue_pb2.VENUE_PRISM  # unspecified -> the instrument's venue
        assert place.client_order_id == f"client-{case.order_id(1)}" and place.spec.limit_price.value == "100.25"

        amend = order_event(case.account, case.symbol, case.order_id(1), 2, "replace_requested")
        cancel = order_event(case.account, case.symbol, case.order_id(1), 3, "cancel_requested")
        filled = order_event(case.account, case.symbol, case.order_id(1), 4, "acknowledged")
        for e in (amend, cancel, filled):
            await case.publish(e, e.event_id)
        await eventually(lambda: len(case.fakes.gateway.cancels) == 1, what="CancelOrder")
        assert [(a.order_id, a.order_version, a.new_spec.quantity.value) for a in case.fakes.gateway.amends] == [
            (case.order_id(1), 2, "0.75")
        ]
        assert case.fakes.gateway.cancels[0].order_id == case.order_id(1)
        await eventually(lambda: exeq.router_source.health.messages >= 5, what="all events acknowledged")
        assert len(case.fakes.gateway.places) == 1
        assert exeq.router.stats.duplicates == 1
    finally:
        await running.stop()
        await delete_consumers(exeq)


async def test_a_redelivered_accepted_event_is_not_placed_twice(case: Case) -> None:
    # The first PlaceOrder answers after the ack wait, so JetStream redelivers the unacknowledged message
    # while the first call is still in flight.
    settings = exeq_settings(case.fakes, case.account, case.symbol, case.tag, ack_wait_s=0.5)
    case.fakes.gateway.place_delay_s = 1.2
    exeq, running = await start_exeq(settings)
    try:
        accepted = order_event(case.account, case.symbol, case.order_id(2), 1, "accepted")
        await case.publish(accepted, accepted.event_id)
        await eventually(lambda: exeq.router_source.health.messages >= 2, limit_s=10, what="redelivery acked")
        assert [p.order_id for p in case.fakes.gateway.places] == [case.order_id(2)]
        assert case.fakes.gateway.attempts == 1
        await asyncio.sleep(0.6)  # past another ack wait: nothing is pending any more
        info = await case.bus.js.consumer_info("ORDERS", settings.router_durable)
        assert info.num_ack_pending == 0 and info.num_pending == 0
        assert len(case.fakes.gateway.places) == 1
    finally:
        await running.stop()
        await delete_consumers(exeq)


async def test_gateway_unavailable_is_retried_and_the_order_placed_once_it_answers(case: Case) -> None:
    case.fakes.gateway.unavailable = 3
    exeq, running = await start_exeq(exeq_settings(case.fakes, case.account, case.symbol, case.tag))
    try:
        accepted = order_event(case.account, case.symbol, case.order_id(3), 1, "accepted")
        await case.publish(accepted, accepted.event_id)
        await eventually(lambda: len(case.fakes.gateway.places) == 1, what="PlaceOrder after retries")
        assert case.fakes.gateway.attempts == 4
        assert exeq.router.stats.retries == 3
    finally:
        await running.stop()
        await delete_consumers(exeq)


async def test_an_unacknowledged_event_is_placed_after_a_restart(case: Case) -> None:
    case.fakes.gateway.unavailable = 10_000
    settings = exeq_settings(case.fakes, case.account, case.symbol, case.tag, ack_wait_s=1.0)
    exeq, running = await start_exeq(settings)
    accepted = order_event(case.account, case.symbol, case.order_id(4), 1, "accepted")
    try:
        await case.publish(accepted, accepted.event_id)
        await eventually(lambda: case.fakes.gateway.attempts >= 2, what="retrying")
    finally:
        await running.stop()
    assert case.fakes.gateway.places == []
    case.fakes.gateway.unavailable = 0
    exeq, running = await start_exeq(settings)  # same durable: the unacknowledged message comes back
    try:
        await eventually(lambda: len(case.fakes.gateway.places) == 1, what="PlaceOrder after restart")
        assert case.fakes.gateway.places[0].order_id == case.order_id(4)
    finally:
        await running.stop()
        await delete_consumers(exeq)


async def test_an_unacknowledged_event_is_not_placed_again_after_a_restart_once_the_venue_answered_it(
    case: Case,
) -> None:
    # The previous process placed the order, and the venue's fill reached the OMS, but its ack of the accepted
    # event was lost. A venue that forgot the order (a restarted PRISM) would fill it a second time.
    case.fakes.gateway.unavailable = 10_000
    settings = exeq_settings(case.fakes, case.account, case.symbol, case.tag, ack_wait_s=1.0)
    exeq, running = await start_exeq(settings)
    accepted = order_event(case.account, case.symbol, case.order_id(5), 1, "accepted")
    try:
        await case.publish(accepted, accepted.event_id)
        await eventually(lambda: case.fakes.gateway.attempts >= 2, what="retrying")
    finally:
        await running.stop()
    filled = order_pb2.Order()
    filled.CopyFrom(accepted.order)
    filled.status, filled.venue_order_id = order_pb2.ORDER_STATUS_FILLED, "PRISM-1"
    case.fakes.oms.orders[(case.account, filled.client_order_id)] = filled
    case.fakes.gateway.unavailable = 0
    exeq, running = await start_exeq(settings)
    try:
        await eventually(lambda: exeq.router.stats.resends_skipped == 1, what="resend skipped")
        await eventually(lambda: exeq.router_source.health.messages >= 1, what="acknowledged")
        await asyncio.sleep(1.2)  # past the ack wait: nothing comes back
        info = await case.bus.js.consumer_info("ORDERS", settings.router_durable)
        assert info.num_ack_pending == 0 and info.num_pending == 0
        assert case.fakes.gateway.places == []
    finally:
        await running.stop()
        await delete_consumers(exeq)
