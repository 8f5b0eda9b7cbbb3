"""The journal on JetStream ORDERS: deduplicated appends, and a follower that replays the stream from the start
and then keeps applying new events (so memory converges on the stream even after a lost publish ack)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import structlog
from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError
from trade.oms.v1 import events_pb2

from services.oms.adapters.codec import REPORT_ID_HEADER, event_from_pb, event_to_pb
from services.oms.domain.model import OrderChange
from services.runtime.bus import Bus
from services.runtime.errors import DomainError, ErrorKind

log = structlog.get_logger("oms.journal")


def subject_of(change: OrderChange) -> str:
    return f"orders.{change.order.account_id}.{change.order.symbol}"


def decode(
    data: bytes, headers: dict[str, str] | None, known: Callable[[str, int], bool] | None = None
) -> OrderChange | None:
    """The event, or None when it is undecodable or `known(order_id, version)` says memory already holds it."""
    try:
        event = events_pb2.OrderEvent.FromString(data)
        if event.WhichOneof("event") is None or not event.order.order_id:
            raise ValueError("not an order event")
        if known is not None and known(event.order.order_id, event.order.version):
            return None
        return event_from_pb(event, (headers or {}).get(REPORT_ID_HEADER, ""))
    except (DecodeError, ValueError, KeyError, ArithmeticError) as exc:
        log.error("journal.undecodable", error=str(exc))
        return None


class JetStreamJournal:
    def __init__(self, bus: Bus, stream: str, publish_timeout_s: float = 2.0) -> None:
        self.bus = bus
        self.stream = stream
        self.publish_timeout_s = publish_timeout_s

    async def append(self, change: OrderChange) -> OrderChange | None:
        headers = {REPORT_ID_HEADER: change.report_id} if change.report_id else None
        data = event_to_pb(change).SerializeToString()
        try:
            ack = await self.bus.publish(
                subject_of(change), data, msg_id=change.event_id, headers=headers, timeout_s=self.publish_timeout_s
            )
            if not ack.duplicate:
                return None
            stored = await self.bus.js.get_msg(self.stream, ack.seq)
        except Exception as exc:
            raise DomainError(
                "DEPENDENCY_UNAVAILABLE",
                f"could not append {change.event_id} to {self.stream}: {type(exc).__name__}",
                ErrorKind.UNAVAILABLE,
            ) from exc
        log.warning("journal.duplicate", event_id=change.event_id, seq=ack.seq)
        restored = decode(stored.data or b"", dict(stored.headers or {}))
        if restored is None or restored.event_id != change.event_id:
            raise DomainError("INTERNAL", f"{self.stream} seq {ack.seq} is not {change.event_id}", ErrorKind.INTERNAL)
        return restored


class JournalFollower:
    """Applies the journal to memory in stream order: an ordered push consumer from the first message, plus
    `sync()`, which reads whatever lies beyond the cursor directly (on demand and periodically), so that memory
    converges on the stream even if the push consumer stalls after a NATS restart."""

    def __init__(
        self,
        bus: Bus,
        stream: str,
        subject_filter: str,
        apply: Callable[[OrderChange], object],
        sync_interval_s: float = 5.0,
        known: Callable[[str, int], bool] | None = None,
    ) -> None:
        self.bus = bus
        self.stream = stream
        self.subject_filter = subject_filter
        self.apply = apply
        # Memory already holds this order version (most events: this process appended them): skip the conversion.
        self.known = known
        self.sync_interval_s = sync_interval_s
        # Stream sequence of the last journal message applied (by either reader).
        self.cursor = 0
        # Journal messages read beyond the cursor, and the events among them memory did not hold yet.
        self.read = 0
        self.replayed = 0
        self._sub: JetStreamContext.PushSubscription | None = None
        self._sync_lock = asyncio.Lock()
        self._watchdog: asyncio.Task[None] | None = None

    def _take(self, seq: int, data: bytes, headers: dict[str, str] | None) -> None:
        if seq <= self.cursor:
            return
        self.read += 1
        change = decode(data, headers, self.known)
        if change is not None:
            self.apply(change)
            self.replayed += 1
        self.cursor = seq

    async def _on_msg(self, msg: Msg) -> None:
        self._take(msg.metadata.sequence.stream, msg.data, msg.headers)

    async def start(self, timeout_s: float | None = None, progress_every_s: float = 5.0) -> None:
        """Subscribe beyond the cursor (0: from the start; a snapshot's position otherwise), then return once every
        message stored before the call has been applied (TimeoutError past `timeout_s`, if one is given)."""
        started = time.monotonic()
        reported = started
        info = await self.bus.js.stream_info(self.stream)
        target = info.state.last_seq
        config = (
            api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self.cursor + 1)
            if self.cursor
            else api.ConsumerConfig(deliver_policy=api.DeliverPolicy.ALL)
        )
        self._sub = await self.bus.js.subscribe(
            self.subject_filter,
            stream=self.stream,
            ordered_consumer=True,
            cb=self._on_msg,
            config=config,
            pending_msgs_limit=-1,
            pending_bytes_limit=-1,
        )
        # The push consumer does the bulk of the replay; once the server has nothing pending for it, sync() reads
        # directly whatever the callback has not applied yet (still buffered in the client).
        while self.cursor < target and not await self._nothing_pending():
            now = time.monotonic()
            if timeout_s is not None and now - started > timeout_s:
                raise TimeoutError(f"replay of {self.stream} did not finish in {timeout_s}s (at seq {self.cursor})")
            if now - reported >= progress_every_s:
                reported = now
                log.info("journal.replaying", seq=self.cursor, target=target, seconds=round(now - started, 1))
            await asyncio.sleep(0.02)
        await self.sync()
        elapsed = round(time.monotonic() - started, 3)
        log.info("journal.replayed", events=self.replayed, read=self.read, seq=self.cursor, seconds=elapsed)
        self._watchdog = asyncio.create_task(self._sync_periodically(), name="oms-journal-sync")

    async def _nothing_pending(self) -> bool:
        if self._sub is None:
            return False
        try:
            info = await self._sub.consumer_info()
        except Exception:
            return False
        return bool(info.num_pending == 0)

    async def sync(self) -> int:
        """Apply every journal message beyond the cursor now; returns how many were read."""
        read = 0
        async with self._sync_lock:
            while True:
                try:
                    raw = await self.bus.js.get_msg(
                        self.stream, seq=self.cursor + 1, subject=self.subject_filter, next=True
                    )
                except NotFoundError:
                    return read
                if raw.seq is None:
                    return read
                self._take(raw.seq, raw.data or b"", dict(raw.headers or {}))
                read += 1

    async def _sync_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.sync_interval_s)
            try:
                if await self.sync():
                    log.info("journal.synced", seq=self.cursor)
            except Exception as exc:  # NATS down: try again next round
                log.warning("journal.sync_failed", error=f"{type(exc).__name__}: {exc}")

    async def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
            self._watchdog = None
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
