"""exeq router decisions: which gateway call each OMS event needs, exactly-once placing, retries on transient
gateway failures, per-order ordering with concurrency across orders."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from services.exeq.domain.router import (
    Action,
    GatewayAnswer,
    OrderEventView,
    Route,
    Router,
    TransientGatewayError,
    route_for,
)

Event = OrderEventView[None]


def event(order_id: str, version: int, kind: str, venue: str = "", symbol: str = "BTCUSDT") -> Event:
    return OrderEventView(f"{order_id}:{version}", order_id, "ACC-1", symbol, version, kind, venue, None)


class FakeGateway:
    def __init__(self, transient_failures: int = 0, delay_s: float = 0.0) -> None:
        self.calls: list[tuple[str, str, int, str]] = []
        self.transient_failures = transient_failures
        self.delay_s = delay_s
        self.in_flight = 0
        self.max_in_flight = 0
        self.answer = GatewayAnswer(True)

    async def _call(self, action: str, e: Event, venue: str) -> GatewayAnswer:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if self.transient_failures:
                self.transient_failures -= 1
                raise TransientGatewayError("UNAVAILABLE")
            self.calls.append((action, e.order_id, e.version, venue))
            return self.answer
        finally:
            self.in_flight -= 1

    async def place(self, e: Event, venue: str) -> GatewayAnswer:
        return await self._call("place", e, venue)

    async def cancel(self, e: Event, venue: str) -> GatewayAnswer:
        return await self._call("cancel", e, venue)

    async def amend(self, e: Event, venue: str) -> GatewayAnswer:
        return await self._call("amend", e, venue)


async def no_sleep(_: float) -> None:
    await asyncio.sleep(0)


def router(gateway: FakeGateway) -> Router[None]:
    return Router(gateway, {"ETHUSDT": "BINANCE_SPOT"}, no_sleep, fallback_venue="PRISM")


@pytest.mark.parametrize(
    ("kind", "venue", "symbol", "expected"),
    [
        ("accepted", "", "BTCUSDT", Route(Action.PLACE, "PRISM")),
        ("accepted", "", "ETHUSDT", Route(Action.PLACE, "BINANCE_SPOT")),
        ("accepted", "PAPER", "ETHUSDT", Route(Action.PLACE, "PAPER")),
        ("cancel_requested", "PRISM", "BTCUSDT", Route(Action.CANCEL, "PRISM")),
        ("replace_requested", "", "BTCUSDT", Route(Action.AMEND, "PRISM")),
        ("filled", "PRISM", "BTCUSDT", None),
        ("acknowledged", "PRISM", "BTCUSDT", None),
        ("rejected", "", "BTCUSDT", None),
        ("", "", "BTCUSDT", None),
    ],
)
def test_route_for_each_event_kind(kind: str, venue: str, symbol: str, expected: Route | None) -> None:
    assert route_for(kind, venue, symbol, {"ETHUSDT": "BINANCE_SPOT"}, "PRISM") == expected


async def test_accepted_event_is_placed_once_even_when_delivered_again_or_under_another_event_id() -> None:
    gateway = FakeGateway()
    r = router(gateway)
    first = event("O1", 1, "accepted")
    again_other_id = OrderEventView("O1:1:republished", "O1", "ACC-1", "BTCUSDT", 1, "accepted", "", None)
    await r.handle(first)
    await r.handle(first)
    await r.handle(again_other_id)
    assert gateway.calls == [("place", "O1", 1, "PRISM")]
    assert r.stats.placed == 1 and r.stats.duplicates == 2


class FakePlacements:
    """What the OMS says of each order: whether its venue answered the placement."""

    def __init__(self, answered: set[str], transient_failures: int = 0) -> None:
        self.answered = answered
        self.transient_failures = transient_failures
        self.asked: list[str] = []

    async def venue_answered(self, e: Event) -> bool:
        self.asked.append(e.order_id)
        if self.transient_failures:
            self.transient_failures -= 1
            raise TransientGatewayError("UNAVAILABLE: oms")
        return e.order_id in self.answered


def restarted_router(gateway: FakeGateway, placements: FakePlacements) -> Router[None]:
    return Router(gateway, {}, no_sleep, fallback_venue="PRISM", placements=placements)


def redelivered(order_id: str, version: int, kind: str) -> Event:
    return replace(event(order_id, version, kind), redelivered=True)


async def test_after_a_restart_an_accepted_event_delivered_again_is_not_placed_when_the_venue_already_answered() -> (
    None
):
    gateway, placements = FakeGateway(), FakePlacements(answered={"O1"})
    r = restarted_router(gateway, placements)
    await r.handle(redelivered("O1", 1, "accepted"))
    await r.handle(redelivered("O1", 1, "accepted"))
    assert gateway.calls == [] and placements.asked == ["O1"]
    assert r.stats.resends_skipped == 1 and r.stats.duplicates == 1
    await r.handle(event("O1", 4, "cancel_requested"))  # later events of the order still go out
    assert gateway.calls == [("cancel", "O1", 4, "PRISM")]


async def test_an_accepted_event_delivered_again_is_placed_when_the_oms_holds_no_venue_answer() -> None:
    gateway, placements = FakeGateway(), FakePlacements(answered=set(), transient_failures=2)
    r = restarted_router(gateway, placements)
    await asyncio.wait_for(r.handle(redelivered("O2", 1, "accepted")), 5)
    assert gateway.calls == [("place", "O2", 1, "PRISM")]
    assert placements.asked == ["O2", "O2", "O2"] and r.stats.retries == 2


async def test_a_placement_retried_after_a_gateway_failure_stops_once_the_oms_has_the_venue_answer() -> None:
    gateway, placements = FakeGateway(transient_failures=1), FakePlacements(answered=set())
    r = restarted_router(gateway, placements)

    async def venue_answer_arrives(_: float) -> None:  # the fill report reached the OMS during the backoff
        placements.answered.add("O4")

    r._sleep = venue_answer_arrives
    await r.handle(event("O4", 1, "accepted"))
    assert gateway.calls == [] and placements.asked == ["O4"]
    assert r.stats.resends_skipped == 1 and r.stats.retries == 1


async def test_a_first_delivery_is_placed_without_asking_the_oms() -> None:
    gateway, placements = FakeGateway(), FakePlacements(answered={"O3"})
    r = restarted_router(gateway, placements)
    await r.handle(event("O3", 1, "accepted"))
    await r.handle(redelivered("O3", 1, "accepted"))  # placed by this process: a duplicate, no question
    assert gateway.calls == [("place", "O3", 1, "PRISM")] and placements.asked == []


async def test_cancel_and_amend_go_to_the_order_venue_and_stale_events_are_dropped() -> None:
    gateway = FakeGateway()
    r = router(gateway)
    await r.handle(event("O1", 1, "accepted", "PRISM"))
    await r.handle(event("O1", 3, "replace_requested", "PRISM"))
    await r.handle(event("O1", 5, "cancel_requested", "PRISM"))
    await r.handle(event("O1", 3, "replace_requested", "PRISM"))  # redelivered after a newer one: stale
    await r.handle(event("O1", 1, "accepted", "PRISM"))  # an accepted after the cancel must never place
    assert gateway.calls == [("place", "O1", 1, "PRISM"), ("amend", "O1", 3, "PRISM"), ("cancel", "O1", 5, "PRISM")]


async def test_transient_gateway_failures_are_retried_until_a_definitive_answer() -> None:
    gateway = FakeGateway(transient_failures=3)
    r = router(gateway)
    await asyncio.wait_for(r.handle(event("O1", 1, "accepted")), 5)
    assert gateway.calls == [("place", "O1", 1, "PRISM")]
    assert r.stats.retries == 3


async def test_a_venue_rejection_is_definitive_and_not_retried() -> None:
    gateway = FakeGateway()
    gateway.answer = GatewayAnswer(False, "FAILED_PRECONDITION/VENUE_REJECTED")
    r = router(gateway)
    await r.handle(event("O1", 1, "accepted"))
    await r.handle(event("O1", 1, "accepted"))
    assert len(gateway.calls) == 1
    assert r.stats.refused == 1 and r.stats.retries == 0


async def test_events_we_do_not_route_never_reach_the_gateway() -> None:
    gateway = FakeGateway()
    r = router(gateway)
    await r.handle_many([event("O1", 2, "acknowledged"), event("O1", 3, "filled"), event("O2", 2, "canceled")])
    assert gateway.calls == []
    assert r.stats.ignored == 3


async def test_different_orders_are_routed_concurrently_one_orders_events_in_order() -> None:
    gateway = FakeGateway(delay_s=0.05)
    r = router(gateway)
    batch = [event(f"O{i}", 1, "accepted") for i in range(10)]
    batch += [event("O3", 2, "replace_requested"), event("O3", 3, "cancel_requested")]
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(r.handle_many(batch), 5)
    elapsed = asyncio.get_running_loop().time() - started
    assert gateway.max_in_flight >= 10
    assert elapsed < 0.5  # 12 calls of 50 ms: concurrent, with O3's three in sequence
    o3 = [(a, v) for a, o, v, _ in gateway.calls if o == "O3"]
    assert o3 == [("place", 1), ("amend", 2), ("cancel", 3)]


async def test_one_orders_events_stay_ordered_across_concurrent_batches() -> None:
    gateway = FakeGateway(delay_s=0.02)
    r = router(gateway)
    first = asyncio.create_task(r.handle_many([event("O1", 1, "accepted"), event("O2", 1, "accepted")]))
    second = asyncio.create_task(r.handle_many([event("O1", 2, "cancel_requested")]))
    await asyncio.wait_for(asyncio.gather(first, second), 5)
    assert [(a, o) for a, o, _, _ in gateway.calls if o == "O1"] == [("place", "O1"), ("cancel", "O1")]


async def test_an_event_cancelled_while_it_waits_for_the_orders_previous_event_leaves_that_one_unharmed() -> None:
    gateway = FakeGateway(delay_s=0.05)
    r = router(gateway)
    first = asyncio.create_task(r.handle(event("O1", 1, "accepted")))
    await asyncio.sleep(0)
    second = asyncio.create_task(r.handle(event("O1", 2, "cancel_requested")))
    await asyncio.sleep(0.01)
    second.cancel()  # exeq stopping: its batch is cancelled
    await asyncio.gather(second, return_exceptions=True)
    await asyncio.wait_for(first, 1)
    assert gateway.calls == [("place", "O1", 1, "PRISM")] and r.stats.placed == 1
