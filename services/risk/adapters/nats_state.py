"""Feeds the in-memory state from NATS: mids from core md.quote.> (MarketDataBatch), positions/open orders from
JetStream FILLS and ORDERS, day PnL from PNL. Each instance has its own consumers that replay from the start (PNL:
the last snapshot per account); the start-up waits (bounded) until they caught up, so checks see the current state."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

import structlog
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import api
from nats.js.errors import NotFoundError
from trade.normalizer.v1 import events_pb2 as md_events_pb2
from trade.pnl.v1 import events_pb2 as pnl_events_pb2

from services.risk.adapters.codec import apply_fill, apply_order_event
from services.risk.domain.state import ExposureBook, MidBook, PnlBook
from services.runtime.batches import BatchConsumerSpec, ConsumerHealth, consume_batches
from services.runtime.bus import Bus

log = structlog.get_logger("risk.state")

Apply = Callable[[bytes], bool]


def apply_quote(mids: MidBook, data: bytes, now_ns: int) -> bool:
    """The mid of the last two-sided quote per symbol of an MD message (a MarketDataBatch, events in order)."""
    batch = md_events_pb2.MarketDataBatch.FromString(data)
    done: set[str] = set()
    for event in reversed(batch.events):
        if event.WhichOneof("payload") != "quote" or event.quote.symbol in done:
            continue
        quote = event.quote
        if not quote.bid_price.value or not quote.ask_price.value:
            continue
        bid, ask = Decimal(quote.bid_price.value), Decimal(quote.ask_price.value)
        if bid > 0 and ask > 0:
            mids.update_quote(quote.symbol, bid, ask, now_ns)
            done.add(quote.symbol)
    return bool(done)


def apply_pnl(pnl: PnlBook, data: bytes) -> bool:
    snap = pnl_events_pb2.PnlSnapshot.FromString(data)
    if not snap.account_id or not snap.total.day_net_pnl.value:
        return False
    return pnl.update(snap.account_id, snap.trading_day, Decimal(snap.total.day_net_pnl.value), snap.as_of_time_ns)


@dataclass(frozen=True)
class Feed:
    kind: str
    stream: str
    subject: str
    deliver_policy: api.DeliverPolicy
    apply: Apply


class _Running:
    def __init__(self, feed: Feed, spec: BatchConsumerSpec) -> None:
        self.feed = feed
        self.spec = spec
        self.health = ConsumerHealth(spec)
        self.caught_up = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.errors = 0
        # Messages the server still held for this consumer after its last batch (-1: none handled yet).
        self.pending = -1
        # Stream sequence of the last message handled (or where the feed started after a snapshot).
        self.last_seq = max(spec.start_sequence - 1, 0)

    async def handle(self, batch: Sequence[Msg]) -> None:
        for msg in batch:
            try:
                self.feed.apply(msg.data)
            except Exception as exc:  # a poison message must not stop the feed: skip it, loudly
                self.errors += 1
                log.warning("risk.bad_message", feed=self.feed.kind, subject=msg.subject, error=repr(exc))
        if batch:
            meta = batch[-1].metadata
            self.pending = meta.num_pending
            self.last_seq = meta.sequence.stream
            if self.pending == 0:
                self.caught_up.set()


class NatsStateFeeds:
    def __init__(
        self,
        bus: Bus,
        feeds: Sequence[Feed],
        mids: MidBook,
        quote_subject: str,
        durable_prefix: str,
        clock_ns: Callable[[], int],
        inactive_threshold_s: float = 600.0,
    ) -> None:
        self._bus = bus
        self._feeds = feeds
        self._mids = mids
        self._quote_subject = quote_subject
        self._clock_ns = clock_ns
        self._instance = f"{durable_prefix}-{secrets.token_hex(4)}"
        self._inactive_threshold_s = inactive_threshold_s
        self._running: list[_Running] = []
        self._quote_sub: Subscription | None = None

    async def _on_quote(self, msg: Msg) -> None:
        try:
            apply_quote(self._mids, msg.data, self._clock_ns())
        except Exception as exc:
            log.warning("risk.bad_quote", subject=msg.subject, error=repr(exc))

    async def warm_mids(self, md_stream: str, symbols: Iterable[str]) -> None:
        """The last quote of each known symbol from the MD stream, so checks have a mid before the next tick."""
        prefix = self._quote_subject.removesuffix(">")
        for symbol in symbols:
            with contextlib.suppress(NotFoundError, Exception):
                msg = await self._bus.js.get_last_msg(md_stream, prefix + symbol)
                if msg.data:
                    apply_quote(self._mids, msg.data, self._clock_ns())

    async def start(
        self,
        warmup_timeout_s: float | None = None,
        progress_every_s: float = 5.0,
        start_after: Mapping[str, int] | None = None,
    ) -> None:
        """Start every feed (after the stream sequence `start_after` gives for its kind, e.g. a snapshot's; from its
        deliver policy otherwise), then return once each one caught up: until then the process does not serve, so
        CheckOrder fails closed (the OMS refuses orders as RISK_CHECK_UNAVAILABLE) rather than judge an order
        against positions and open orders that are still being replayed. `warmup_timeout_s` (tests) bounds the
        wait; the feeds then go on catching up while the process serves."""
        start_after = start_after or {}
        self._quote_sub = await self._bus.nc.subscribe(self._quote_subject, cb=self._on_quote)
        for feed in self._feeds:
            spec = BatchConsumerSpec(
                stream=feed.stream,
                durable=f"{self._instance}-{feed.kind}",
                filter_subject=feed.subject,
                batch=1000,
                deliver_policy=feed.deliver_policy,
                start_sequence=start_after[feed.kind] + 1 if feed.kind in start_after else 0,
                inactive_threshold_s=self._inactive_threshold_s,
                mem_storage=True,
            )
            await self._bus.js.add_consumer(feed.stream, spec.config())
            running = _Running(feed, spec)
            info = await self._bus.js.consumer_info(feed.stream, spec.durable)
            if info.num_pending == 0:
                running.caught_up.set()
            running.task = asyncio.create_task(
                consume_batches(self._bus, spec, running.handle, running.health), name=f"risk:{spec.durable}"
            )
            self._running.append(running)
        started = time.monotonic()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(warmup_timeout_s):
                while not self.caught_up():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            asyncio.gather(*(r.caught_up.wait() for r in self._running)), progress_every_s
                        )
                    if not self.caught_up():
                        elapsed = round(time.monotonic() - started, 1)
                        log.info("risk.feeds_catching_up", seconds=elapsed, **self._progress())
        for running in self._running:
            if not running.caught_up.is_set():
                log.warning("risk.feed_not_caught_up", feed=running.feed.kind, timeout_s=warmup_timeout_s)
        log.info(
            "risk.feeds_started",
            feeds=[r.spec.durable for r in self._running],
            seconds=round(time.monotonic() - started, 1),
            **self._progress(),
        )

    def _progress(self) -> dict[str, str]:
        return {r.feed.kind: f"{r.health.messages} applied, {max(r.pending, 0)} pending" for r in self._running}

    def caught_up(self) -> bool:
        return all(r.caught_up.is_set() for r in self._running)

    def sequences(self) -> dict[str, int]:
        """The stream sequence each feed has handled up to."""
        return {r.feed.kind: r.last_seq for r in self._running}

    def applied(self) -> dict[str, int]:
        """Messages each feed has handled since it started."""
        return {r.feed.kind: r.health.messages for r in self._running}

    async def stop(self) -> None:
        if self._quote_sub is not None:
            with contextlib.suppress(Exception):
                await self._quote_sub.unsubscribe()
            self._quote_sub = None
        for running in self._running:
            if running.task is not None:
                running.task.cancel()
        await asyncio.gather(*(r.task for r in self._running if r.task is not None), return_exceptions=True)
        for running in self._running:
            with contextlib.suppress(Exception):
                await self._bus.js.delete_consumer(running.spec.stream, running.spec.durable)
        self._running.clear()


def default_feeds(
    exposure: ExposureBook,
    pnl: PnlBook,
    fills_subject: str,
    orders_subject: str,
    pnl_subject: str,
) -> list[Feed]:
    return [
        Feed("fills", "FILLS", fills_subject, api.DeliverPolicy.ALL, lambda data: apply_fill(exposure, data)),
        Feed("orders", "ORDERS", orders_subject, api.DeliverPolicy.ALL, lambda data: apply_order_event(exposure, data)),
        Feed("pnl", "PNL", pnl_subject, api.DeliverPolicy.LAST_PER_SUBJECT, lambda data: apply_pnl(pnl, data)),
    ]
