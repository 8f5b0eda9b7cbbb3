"""Canonical market data from JetStream MD into the in-process hub: one ordered consumer per kind.

- quotes and trades start with the last message per subject (the latest quote / last trade of each symbol);
- books replay the last `book_replay_s` seconds: the normalizer publishes a snapshot at least every 30 s, so the
  books are synchronized shortly after start and then follow the deltas.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from nats.js import api
from nats.js.errors import NotFoundError
from trade.normalizer.v1 import events_pb2
from trade.type.v1 import market_data_pb2

from services.marketdata.adapters.codec import delta_from_pb, snapshot_from_pb
from services.marketdata.domain.book import Applied
from services.marketdata.domain.hub import MarketData
from services.runtime.bus import Bus
from services.runtime.streams import MARKET_DATA

YIELD_EVERY = 32

log = structlog.get_logger("marketdata.source")

Item = market_data_pb2.Quote | market_data_pb2.Trade


KINDS = {"quotes": "md.quote.>", "trades": "md.trade.>", "books": "md.book.>"}


class NatsMarketDataSource:
    """Feeds the hub from MD. A watchdog re-creates a kind's subscription when MD holds a message for it that
    has not arrived for `stall_after_s` (an ordered consumer that failed its own reset stays silent otherwise)."""

    def __init__(self, bus: Bus, md: MarketData[Any], book_replay_s: float = 35.0, stall_after_s: float = 5.0) -> None:
        self.bus = bus
        self.md = md
        self.book_replay_s = book_replay_s
        self.stall_after_s = stall_after_s
        self.subs: dict[str, Any] = {}
        # The last message of each kind; its stream sequence (parsed from the reply subject) only when the
        # watchdog looks, not for every message.
        self.last_msg: dict[str, Msg] = {}
        self.received = 0
        self.undecodable = 0
        self.book_gaps = 0
        self.resubscribes = 0
        self._checked: dict[str, int | None] = {}
        self._watchdog: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._subscribe("quotes", api.ConsumerConfig(deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT))
        await self._subscribe("trades", api.ConsumerConfig(deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT))
        # A start *sequence* rather than a start time: nats-py's ordered consumer resets by sequence and the
        # server rejects a reset config that still carries opt_start_time.
        since = datetime.now(UTC) - timedelta(seconds=self.book_replay_s)
        start = await self._first_sequence_since(MARKET_DATA.name, KINDS["books"], since)
        await self._subscribe("books", self._from(start))
        self._watchdog = asyncio.create_task(self._watch(), name="marketdata:source-watchdog")

    @staticmethod
    def _from(seq: int) -> api.ConsumerConfig:
        return api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=seq)

    async def _subscribe(self, kind: str, config: api.ConsumerConfig) -> None:
        async def on_msg(msg: Msg) -> None:
            self.last_msg[kind] = msg
            await self._on_msg(msg)
            if self.received % YIELD_EVERY == 0:
                # A burst is dispatched without an await otherwise: let the stream writers drain their queues.
                await asyncio.sleep(0)

        self.subs[kind] = await self.bus.js.subscribe(KINDS[kind], cb=on_msg, ordered_consumer=True, config=config)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.stall_after_s)
            for kind, subject in KINDS.items():
                try:
                    await self._check(kind, subject)
                except Exception as exc:
                    log.warning("marketdata.watchdog_failed", kind=kind, error=repr(exc))

    def last_sequence(self, kind: str) -> int | None:
        """MD stream sequence of the last message of a kind (None before the first, or if it has none)."""
        msg = self.last_msg.get(kind)
        if msg is None:
            return None
        try:
            return int(msg.metadata.sequence.stream)
        except Exception:
            return None

    async def _check(self, kind: str, subject: str) -> None:
        seen = self.last_sequence(kind)
        progressed = seen != self._checked.get(kind)
        self._checked[kind] = seen
        if seen is None or progressed:
            return  # a consumer that is merely behind still makes progress
        try:
            missed = await self.bus.js.get_msg(MARKET_DATA.name, seq=seen + 1, subject=subject, next=True)
        except NotFoundError:
            return  # nothing newer than what we have
        if missed.time is None or (datetime.now(UTC) - missed.time).total_seconds() < self.stall_after_s:
            return
        log.warning("marketdata.source_stalled", kind=kind, last_stream_sequence=seen)
        old = self.subs.pop(kind, None)
        if old is not None:
            with contextlib.suppress(Exception):
                await old.unsubscribe()
        self.resubscribes += 1
        await self._subscribe(kind, self._from(seen + 1))

    async def _first_sequence_since(self, stream: str, subject: str, since: datetime) -> int:
        """Binary search of the stream for the first message on `subject` stored at or after `since`."""
        js = self.bus.js
        info = await js.stream_info(stream)
        lo, hi = max(1, info.state.first_seq), info.state.last_seq + 1
        while lo < hi:
            mid = (lo + hi) // 2
            try:
                msg = await js.get_msg(stream, seq=mid, subject=subject, next=True)
            except NotFoundError:
                hi = mid  # nothing for the subject at or after mid
                continue
            if msg.time is not None and msg.time < since:
                lo = max(mid, msg.seq or mid) + 1
            else:
                hi = mid
        return lo

    async def _on_msg(self, msg: Msg) -> None:
        self.received += 1
        try:
            events = events_pb2.MarketDataBatch.FromString(msg.data).events
        except DecodeError:
            self.undecodable += 1
            log.warning("marketdata.undecodable", subject=msg.subject)
            return
        for event in events:
            self.dispatch(event)

    def dispatch(self, event: events_pb2.MarketDataEvent) -> None:
        which = event.WhichOneof("payload")
        if which == "quote":
            self.md.on_quote(event.quote)
        elif which == "trade":
            self.md.on_trade(event.trade)
        elif which == "book_delta":
            result = self.md.books.on_delta(event.book_delta.symbol, delta_from_pb(event.book_delta))
            if result is Applied.GAP:
                self.book_gaps += 1
                log.warning(
                    "marketdata.book_gap",
                    symbol=event.book_delta.symbol,
                    sequence=event.book_delta.sequence,
                    at=time.time_ns(),
                )
        elif which == "book_snapshot":
            self.md.books.on_snapshot(event.book_snapshot.symbol, snapshot_from_pb(event.book_snapshot))

    async def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        for sub in self.subs.values():
            try:
                await sub.unsubscribe()
            except Exception as exc:
                log.info("marketdata.unsubscribe_failed", error=repr(exc))
        self.subs.clear()
