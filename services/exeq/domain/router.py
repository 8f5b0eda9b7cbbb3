"""Routing of OMS order events to the venue gateway.

accepted -> place, cancel_requested -> cancel, replace_requested -> amend; every other event is not the router's
business. A routed event is finished only once the gateway gave a definitive answer (success or a venue
rejection); a transient failure (gateway unavailable, deadline exceeded) is retried with capped backoff, so the
message stays unacknowledged and comes back after a restart. Idempotency: an order is placed at most once per
process (the OMS order id is also the gateway's idempotency key), events not newer than the last routed version
of an order are dropped, and events of one order are routed in order while different orders run concurrently.

Across restarts: an `accepted` event that JetStream delivers again (its ack was lost, or the process stopped before
acking), and a placement retried after a transient failure (which may have reached the venue), go out only if the
OMS holds no venue answer for the order yet. A venue that forgot the order (a restarted simulator; Binance dedupes
client order ids only among open orders) would otherwise trade it twice.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Generic, Protocol, TypeVar

import structlog

log = structlog.get_logger("exeq.router")

P = TypeVar("P")
Sleeper = Callable[[float], Awaitable[None]]


class Action(Enum):
    PLACE = "place"
    CANCEL = "cancel"
    AMEND = "amend"


@dataclass(frozen=True)
class OrderEventView(Generic[P]):
    """What the router reads of an OMS OrderEvent; `payload` is the original event, opaque to the domain."""

    event_id: str
    order_id: str
    account_id: str
    symbol: str
    version: int
    kind: str  # the OrderEvent oneof name: "accepted", "cancel_requested", ...
    venue: str  # "" when unspecified
    payload: P
    redelivered: bool = False  # JetStream delivered the event before (to this process or an earlier one)


@dataclass(frozen=True)
class Route:
    action: Action
    venue: str


@dataclass(frozen=True)
class GatewayAnswer:
    """A definitive gateway answer: accepted, or refused (by the venue or as an invalid request)."""

    accepted: bool
    detail: str = ""


class TransientGatewayError(Exception):
    """The gateway could not answer now (unavailable, deadline exceeded, rate limited): retry later."""


class PlacementRecord(Protocol[P]):
    async def venue_answered(self, event: OrderEventView[P]) -> bool:
        """Whether the order's venue has already answered its placement (acknowledged, traded, rejected or ended
        it), as far as the OMS knows. Raises TransientGatewayError when that cannot be told now."""
        ...


class VenueGateway(Protocol[P]):
    async def place(self, event: OrderEventView[P], venue: str) -> GatewayAnswer: ...

    async def cancel(self, event: OrderEventView[P], venue: str) -> GatewayAnswer: ...

    async def amend(self, event: OrderEventView[P], venue: str) -> GatewayAnswer: ...


_ACTIONS = {"accepted": Action.PLACE, "cancel_requested": Action.CANCEL, "replace_requested": Action.AMEND}


def route_for(
    kind: str, venue: str, symbol: str, default_venues: Mapping[str, str], fallback_venue: str
) -> Route | None:
    """The gateway call an event needs, if any: the order's venue, else the instrument's, else the fallback."""
    action = _ACTIONS.get(kind)
    if action is None:
        return None
    return Route(action, venue or default_venues.get(symbol, fallback_venue))


@dataclass(frozen=True)
class RetryPolicy:
    first_backoff_s: float = 0.05
    max_backoff_s: float = 2.0


@dataclass
class RouterStats:
    placed: int = 0
    canceled: int = 0
    amended: int = 0
    refused: int = 0
    duplicates: int = 0
    resends_skipped: int = 0
    ignored: int = 0
    retries: int = 0


class _BoundedMap(OrderedDict[str, int]):
    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity

    def put(self, key: str, value: int) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.capacity:
            self.popitem(last=False)


async def _nothing() -> None:
    return None


class Router(Generic[P]):
    def __init__(
        self,
        gateway: VenueGateway[P],
        default_venues: Mapping[str, str],
        sleep: Sleeper,
        fallback_venue: str = "PRISM",
        retry: RetryPolicy = RetryPolicy(),
        memory: int = 200_000,
        placements: PlacementRecord[P] | None = None,
    ) -> None:
        self._gateway = gateway
        self._placements = placements
        self._default_venues = dict(default_venues)
        self._fallback = fallback_venue
        self._sleep = sleep
        self._retry = retry
        # order_id -> last version routed (any action); an order is placed at most once per process.
        self._routed = _BoundedMap(memory)
        self._placed = _BoundedMap(memory)
        # order_id -> completion of the order's last admitted event (the next one waits for it).
        self._lanes: dict[str, asyncio.Future[None]] = {}
        self.stats = RouterStats()

    def route(self, event: OrderEventView[P]) -> Route | None:
        return route_for(event.kind, event.venue, event.symbol, self._default_venues, self._fallback)

    def is_duplicate(self, event: OrderEventView[P], route: Route) -> bool:
        if route.action == Action.PLACE and event.order_id in self._placed:
            return True
        last = self._routed.get(event.order_id)
        return last is not None and event.version <= last

    async def handle_many(self, events: list[OrderEventView[P]]) -> None:
        """Route a batch: different orders concurrently, one order's events in the order given. Each event takes
        its place in its order's lane before the first await, so the order also holds across concurrent batches."""
        jobs = [self._admit(e) for e in events]
        if len(jobs) == 1:
            await jobs[0]
        elif jobs:
            await asyncio.gather(*jobs)

    async def handle(self, event: OrderEventView[P]) -> None:
        await self.handle_many([event])

    def _admit(self, event: OrderEventView[P]) -> Coroutine[None, None, None]:
        route = self.route(event)
        if route is None:
            self.stats.ignored += 1
            return _nothing()
        previous = self._lanes.get(event.order_id)
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._lanes[event.order_id] = mine
        return self._run(event, route, previous, mine)

    async def _run(
        self,
        event: OrderEventView[P],
        route: Route,
        previous: asyncio.Future[None] | None,
        mine: asyncio.Future[None],
    ) -> None:
        try:
            if previous is not None:
                await asyncio.shield(previous)  # a cancelled waiter must not cancel the event before it
            if self.is_duplicate(event, route):
                self.stats.duplicates += 1
                log.debug("router.duplicate", event_id=event.event_id, action=route.action.value)
                return
            answer = await self._call_until_answered(event, route)
            if answer is None:
                self.stats.resends_skipped += 1
                log.info("router.resend_skipped", event_id=event.event_id, order_id=event.order_id)
                answer = GatewayAnswer(True, "placed before")
            self._record(event, route, answer)
        finally:
            mine.set_result(None)
            if self._lanes.get(event.order_id) is mine:
                del self._lanes[event.order_id]

    async def _call_until_answered(self, event: OrderEventView[P], route: Route) -> GatewayAnswer | None:
        """The gateway's answer; None for a placement that the venue answered before (nothing was sent)."""
        backoff = self._retry.first_backoff_s
        # A placement delivered again, or retried after a failure that may have reached the venue, goes out only
        # if the OMS holds no venue answer for the order yet.
        ask_first = route.action == Action.PLACE and event.redelivered
        while True:
            try:
                if ask_first and self._placements is not None and await self._placements.venue_answered(event):
                    return None
                return await self._call(event, route)
            except TransientGatewayError as exc:
                self.stats.retries += 1
                log.warning("router.gateway_retry", event_id=event.event_id, error=str(exc), backoff_s=backoff)
                await self._sleep(backoff)
                backoff = min(backoff * 2, self._retry.max_backoff_s)
                ask_first = route.action == Action.PLACE

    async def _call(self, event: OrderEventView[P], route: Route) -> GatewayAnswer:
        if route.action == Action.PLACE:
            return await self._gateway.place(event, route.venue)
        if route.action == Action.CANCEL:
            return await self._gateway.cancel(event, route.venue)
        return await self._gateway.amend(event, route.venue)

    def _record(self, event: OrderEventView[P], route: Route, answer: GatewayAnswer) -> None:
        self._routed.put(event.order_id, max(event.version, self._routed.get(event.order_id, 0)))
        if route.action == Action.PLACE:
            self._placed.put(event.order_id, event.version)
        if not answer.accepted:
            self.stats.refused += 1
            log.info("router.refused", event_id=event.event_id, action=route.action.value, detail=answer.detail)
        elif route.action == Action.PLACE:
            self.stats.placed += 1
        elif route.action == Action.CANCEL:
            self.stats.canceled += 1
        else:
            self.stats.amended += 1
