"""exeq on NATS: the ORDERS consumers (router, child events), the EXEQ publisher and replay, public trades."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence

import structlog
from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import api
from nats.js.errors import NotFoundError
from trade.exeq.v1 import events_pb2 as exeq_events_pb2
from trade.oms.v1 import events_pb2 as oms_events_pb2

from services.exeq.adapters.codec import child_update, event_pb, market_trades, order_event_view, parent_from
from services.exeq.domain.engine import ExecutionEngine
from services.exeq.domain.model import ParentEvent, ParentOrder
from services.exeq.domain.router import Router
from services.runtime.batches import BatchConsumerSpec, ConsumerHealth, consume_batches
from services.runtime.bus import Bus

log = structlog.get_logger("exeq.nats")


async def ensure_consumer(bus: Bus, spec: BatchConsumerSpec) -> None:
    """Create the durable now (not lazily in the consumer loop) so nothing published after start-up is missed."""
    try:
        await bus.js.consumer_info(spec.stream, spec.durable)
    except NotFoundError:
        await bus.js.add_consumer(spec.stream, spec.config())


def decode_order_events(msgs: Sequence[Msg]) -> list[oms_events_pb2.OrderEvent]:
    return [event for event, _ in decode_deliveries(msgs)]


def decode_deliveries(msgs: Sequence[Msg]) -> list[tuple[oms_events_pb2.OrderEvent, bool]]:
    """The well-formed events, each with whether JetStream delivered it before."""
    events = []
    for msg in msgs:
        try:
            events.append((oms_events_pb2.OrderEvent.FromString(msg.data), msg.metadata.num_delivered > 1))
        except DecodeError:
            log.warning("exeq.malformed_order_event", subject=msg.subject)
    return events


class BatchSource:
    """One durable batch consumer running a handler; acknowledged only after the handler returned."""

    def __init__(self, bus: Bus, spec: BatchConsumerSpec, handler: Callable[[Sequence[Msg]], Awaitable[None]]) -> None:
        self._bus = bus
        self.health = ConsumerHealth(spec)
        self._handler = handler
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await ensure_consumer(self._bus, self.health.spec)
        self._task = asyncio.create_task(
            consume_batches(self._bus, self.health.spec, self._handler, self.health),
            name=f"exeq:{self.health.spec.durable}",
        )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


def router_handler(router: Router[oms_events_pb2.OrderEvent]) -> Callable[[Sequence[Msg]], Awaitable[None]]:
    async def handle(msgs: Sequence[Msg]) -> None:
        await router.handle_many([order_event_view(e, again) for e, again in decode_deliveries(msgs)])

    return handle


def child_events_handler(engine: ExecutionEngine) -> Callable[[Sequence[Msg]], Awaitable[None]]:
    async def handle(msgs: Sequence[Msg]) -> None:
        for event in decode_order_events(msgs):
            update = child_update(event)
            if update is not None:
                await engine.on_child_update(update)

    return handle


class JetStreamParentSink:
    """ParentOrderEvent -> EXEQ under <prefix>.<account_id>.<symbol>, Nats-Msg-Id = event_id."""

    def __init__(self, bus: Bus, prefix: str, attempts: int = 3) -> None:
        self._bus = bus
        self._prefix = prefix
        self._attempts = attempts

    async def publish(self, event: ParentEvent) -> None:
        data = event_pb(event).SerializeToString()
        subject = f"{self._prefix}.{event.parent.account_id}.{event.parent.symbol}"
        for attempt in range(self._attempts):
            try:
                await self._bus.publish(subject, data, msg_id=event.event_id, timeout_s=2.0)
                return
            except Exception:
                if attempt == self._attempts - 1:
                    raise
                await asyncio.sleep(0.1 * 2**attempt)


async def load_parents(bus: Bus, stream: str, subject_filter: str, batch: int = 1000) -> list[ParentOrder]:
    """The latest published state of every parent order under the filter (an ephemeral replay of EXEQ)."""
    config = api.ConsumerConfig(
        deliver_policy=api.DeliverPolicy.ALL,
        ack_policy=api.AckPolicy.NONE,
        inactive_threshold=30.0,
        filter_subject=subject_filter,
    )
    sub = await bus.js.pull_subscribe(subject_filter, stream=stream, config=config)
    latest: dict[str, exeq_events_pb2.ParentOrder] = {}
    consumer = ""
    try:
        info = await sub.consumer_info()
        consumer, remaining = info.name, info.num_pending or 0
        while remaining > 0:
            try:
                msgs = await sub.fetch(min(batch, remaining), timeout=5.0)
            except TimeoutError:
                break
            for msg in msgs:
                remaining = msg.metadata.num_pending
                try:
                    parent = exeq_events_pb2.ParentOrderEvent.FromString(msg.data).parent_order
                except DecodeError:
                    continue
                known = latest.get(parent.parent_order_id)
                if known is None or parent.version > known.version:
                    latest[parent.parent_order_id] = parent
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
        if consumer:
            with contextlib.suppress(Exception):
                await bus.js.delete_consumer(stream, consumer)
    parents = [p for p in (parent_from(m) for m in latest.values()) if p is not None]
    log.info("exeq.parents_loaded", count=len(parents))
    return parents


class MarketTradeFeed:
    """Public trades for POV parents: a core NATS subscription to <prefix>.<symbol> for each symbol a working POV
    parent needs, opened and closed as the engine's POV symbols change (the trades of other symbols never reach
    this process)."""

    def __init__(self, bus: Bus, prefix: str, engine: ExecutionEngine) -> None:
        self._bus = bus
        self._prefix = prefix
        self._engine = engine
        self._subs: dict[str, Subscription] = {}
        self._wanted: frozenset[str] = frozenset()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.malformed = 0

    @property
    def symbols(self) -> frozenset[str]:
        """The symbols subscribed to now."""
        return frozenset(self._subs)

    async def start(self) -> None:
        self._engine.watch_pov_symbols(self._want)
        self._want(self._engine.pov_symbols())
        await self._sync()
        self._task = asyncio.create_task(self._follow(), name="exeq:market-trades")

    def _want(self, symbols: frozenset[str]) -> None:
        self._wanted = symbols
        self._changed.set()

    async def _follow(self) -> None:
        while True:
            await self._changed.wait()
            try:
                await self._sync()
            except Exception as exc:  # the connection is down: nats-py re-subscribes what exists; retry the rest
                log.warning("exeq.market_trades_sync_failed", error=repr(exc))
                await asyncio.sleep(0.5)
                self._changed.set()

    async def _sync(self) -> None:
        self._changed.clear()
        wanted = self._wanted
        for symbol in [s for s in self._subs if s not in wanted]:
            sub = self._subs.pop(symbol)
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        for symbol in sorted(wanted - self._subs.keys()):
            if not symbol or any(c in symbol for c in ".*> \t"):
                log.warning("exeq.market_trades_bad_symbol", symbol=symbol)
                continue
            self._subs[symbol] = await self._bus.nc.subscribe(f"{self._prefix}.{symbol}", cb=self._on_msg)

    async def _on_msg(self, msg: Msg) -> None:
        symbol = msg.subject.rsplit(".", 1)[-1]
        if not self._engine.wants_trades(symbol):
            return
        try:
            trades = market_trades(msg.data)
        except DecodeError:
            self.malformed += 1
            log.warning("exeq.malformed_market_trades", subject=msg.subject)
            return
        for quantity, event_time_ns in trades:  # POV counts the volume of every trade of the batch
            self._engine.on_market_trade(symbol, quantity, event_time_ns)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for sub in self._subs.values():
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._subs.clear()


async def subscribe_parent_events(
    bus: Bus, prefix: str, account_id: str
) -> tuple[Subscription, asyncio.Queue[exeq_events_pb2.ParentOrderEvent]]:
    """Live parent events of one account (core NATS; JetStream delivers stream messages there too)."""
    queue: asyncio.Queue[exeq_events_pb2.ParentOrderEvent] = asyncio.Queue(maxsize=10_000)

    async def on_msg(msg: Msg) -> None:
        with contextlib.suppress(DecodeError, asyncio.QueueFull):
            queue.put_nowait(exeq_events_pb2.ParentOrderEvent.FromString(msg.data))

    sub = await bus.nc.subscribe(f"{prefix}.{account_id}.>", cb=on_msg)
    return sub, queue
