"""Batched JetStream pull consumption: fetch a batch, hand it to a handler, acknowledge it only after the handler
returned (at-least-once per batch). Self-healing like Bus.consume: heartbeats, re-subscribe after a reconnect,
after going silent with messages pending, or after an error (with backoff)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

import structlog
from nats.aio.msg import Msg
from nats.js import api
from nats.js.errors import NotFoundError

if TYPE_CHECKING:
    from services.runtime.bus import Bus

log = structlog.get_logger("batches")

BatchHandler = Callable[[Sequence[Msg]], Awaitable[None]]
# Plain strings: looking a str-Enum member up in a dict hashes it in Python code, once per message here.
_STATUS: str = api.Header.STATUS.value
_CONTROL: str = api.StatusCode.CONTROL_MESSAGE.value


class ConsumerPhase(Enum):
    """What a batch consumer is doing right now."""

    STARTING = "starting"
    RUNNING = "running"
    RECONNECTING = "reconnecting"
    FAILED = "failed"


@dataclass(frozen=True)
class BatchConsumerSpec:
    """A durable pull consumer whose messages are acknowledged (each, explicitly) once their batch is handled.

    Not AckPolicy.ALL: a message the client never saw (it comes back after ack_wait) must not be acknowledged by
    acking a later one.
    """

    stream: str
    durable: str
    filter_subject: str
    batch: int = 1000
    # At most this many bytes per pull request (0: no limit): bounds a batch whose messages carry many records
    # each (MD messages carry up to 256 ticks); a batch that reaches it goes at once, like a full one.
    max_bytes: int = 0
    fetch_timeout_s: float = 5.0
    heartbeat_s: float = 1.0
    ack_wait_s: float = 30.0
    deliver_policy: api.DeliverPolicy = api.DeliverPolicy.ALL
    max_ack_pending: int = 20_000
    # Batches handled concurrently (their acks follow each handler's return): >1 overlaps a store's write
    # latency with receiving and decoding the next batch. The handler must then tolerate concurrent calls.
    max_in_flight: int = 1
    # After the first message of a batch arrives, wait up to this long for more (fewer, larger store commits); a
    # batch goes as soon as it is full (or its pull request delivered everything it asked for).
    linger_s: float = 0.0
    # When the consumer has to be created: start at this stream sequence (e.g. after what a replay covered).
    start_sequence: int = 0
    # A per-instance consumer: the server deletes it after this long without a client (None: never), and keeps
    # its state in memory. Part of the spec so that re-creating it (after a NATS restart) keeps both.
    inactive_threshold_s: float | None = None
    mem_storage: bool = False

    def config(self) -> api.ConsumerConfig:
        config = api.ConsumerConfig(
            durable_name=self.durable,
            filter_subject=self.filter_subject,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait_s,
            deliver_policy=self.deliver_policy,
            max_ack_pending=self.max_ack_pending,
        )
        if self.start_sequence > 1:
            config.deliver_policy = api.DeliverPolicy.BY_START_SEQUENCE
            config.opt_start_seq = self.start_sequence
        if self.inactive_threshold_s is not None:
            config.inactive_threshold = self.inactive_threshold_s
        if self.mem_storage:
            config.mem_storage = True
        return config


@dataclass
class ConsumerHealth:
    """Observable state of one batch consumer (read by status RPCs)."""

    spec: BatchConsumerSpec
    phase: ConsumerPhase = ConsumerPhase.STARTING
    last_error: str = ""
    last_acked_stream_sequence: int = 0
    last_ack_time_ns: int = 0
    batches: int = 0
    messages: int = 0


class _Inbox:
    """Messages of one pull subscription, delivered by callback (never lost to a timed-out wait)."""

    def __init__(self) -> None:
        self.msgs: deque[Msg] = deque()
        self.arrived = asyncio.Event()
        # The pull request is over (a 404/408/409 status arrived, e.g. its max_bytes was reached): no more comes.
        self.ended = False
        # When the messages now waiting became available for a batch (monotonic; 0.0 while empty).
        self.since = 0.0

    async def on_msg(self, msg: Msg) -> None:
        if not self.msgs:
            self.since = time.monotonic()
        self.msgs.append(msg)
        if msg.headers and msg.headers.get(_STATUS) not in (None, _CONTROL):
            self.ended = True
        self.arrived.set()

    async def wait(self, timeout_s: float) -> None:
        await asyncio.sleep(0)  # let other consumers of the process run between batches
        if not self.msgs:
            await self._arrival(timeout_s)
        self.arrived.clear()

    async def linger(self, until: float, enough: int) -> None:
        """Wait until `enough` messages are waiting, the pull request is over or the monotonic time `until`."""
        while len(self.msgs) < enough and not self.ended:
            left = until - time.monotonic()
            if left <= 0:
                return
            self.arrived.clear()
            await self._arrival(left)

    async def _arrival(self, timeout_s: float) -> None:
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that races the wake-up.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self.arrived.wait()

    def took(self) -> None:
        """A batch was taken: what is left waits (at most one linger) for a batch of its own."""
        self.since = time.monotonic() if self.msgs else 0.0


async def _ensure_consumer(bus: Bus, spec: BatchConsumerSpec) -> None:
    try:
        await bus.js.consumer_info(spec.stream, spec.durable)
    except NotFoundError:
        await bus.js.add_consumer(spec.stream, spec.config())


async def _ack_all(batch: Sequence[Msg]) -> None:
    """Acknowledge each message of the batch (explicitly, one ack per message) in one write.

    msg.ack() is a full publish per message (subject checks, a protocol command, a flush signal): at thousands of
    messages per batch that is a large share of a consumer's CPU. The same ack commands (an empty PUB to each
    message's reply subject, exactly what msg.ack() sends) are joined into one pending write; the last message is
    acknowledged through msg.ack(), which validates the connection and signals nats-py's flusher."""
    client = batch[-1]._client
    send = getattr(client, "_send_command", None)
    if send is not None and len(batch) > 1 and client.is_connected:
        head = batch[:-1]
        if all(msg.reply and not msg._ackd for msg in head):
            await send(b"".join([b"PUB %s 0\r\n\r\n" % msg.reply.encode() for msg in head]))
            for msg in head:
                msg._ackd = True
            await batch[-1].ack()
            return
    for msg in batch:
        await msg.ack()


async def _handle_and_ack(handler: BatchHandler, batch: list[Msg], health: ConsumerHealth) -> None:
    try:
        await handler(batch)
    except Exception:
        # Ask for redelivery now rather than after ack_wait (best effort: the connection may be the failure).
        for msg in batch:
            with contextlib.suppress(Exception):
                await msg.nak()
        raise
    await _ack_all(batch)
    health.batches += 1
    health.messages += len(batch)
    health.last_acked_stream_sequence = max(health.last_acked_stream_sequence, batch[-1].metadata.sequence.stream)
    health.last_ack_time_ns = time.time_ns()


class _InFlight:
    """Handler tasks running concurrently, at most `limit`; a failed one is re-raised in the consumer loop."""

    def __init__(self, limit: int) -> None:
        self._slots = asyncio.Semaphore(limit)
        self._tasks: set[asyncio.Task[None]] = set()
        self._failures: list[BaseException] = []

    async def reserve(self) -> None:
        """Wait for a free slot (messages keep accumulating meanwhile, so the next batch is larger)."""
        await self._slots.acquire()

    def unreserve(self) -> None:
        self._slots.release()

    def submit(self, work: Coroutine[None, None, None]) -> None:
        """Run work in the slot taken by reserve()."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None:
            self._failures.append(task.exception())  # type: ignore[arg-type]

    def raise_failure(self) -> None:
        if self._failures:
            failure, self._failures = self._failures[0], []
            raise failure

    async def cancel_all(self) -> None:
        """Unacknowledged batches of cancelled handlers are redelivered after ack_wait."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._failures.clear()


def _raise_if_cancel_requested() -> None:
    """nats-py swallows a CancelledError that lands inside some of its calls (its flush path catches it and
    passes): the task keeps its cancel request (Task.cancelling() > 0) but runs on. Honour the request here."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def consume_batches(bus: Bus, spec: BatchConsumerSpec, handler: BatchHandler, health: ConsumerHealth) -> None:
    """Run forever (until cancelled). The handler must be idempotent: a batch may be delivered again.

    Pull requests are issued by hand (batch, expires, idle heartbeat) to an inbox read by callback: nats-py's
    fetch() can drop a message that arrives as its wait times out (it then comes back only after ack_wait).
    """
    backoff = 0.2
    in_flight = _InFlight(spec.max_in_flight)
    while True:
        sub = None
        try:
            generation = bus.generation
            await _ensure_consumer(bus, spec)
            inbox = _Inbox()
            reply = bus.nc.new_inbox()
            sub = await bus.nc.subscribe(reply, cb=inbox.on_msg, pending_msgs_limit=-1, pending_bytes_limit=-1)
            next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{spec.stream}.{spec.durable}"
            pull: dict[str, int] = {
                "batch": spec.batch,
                "expires": int(spec.fetch_timeout_s * 1e9),
                "idle_heartbeat": int(spec.heartbeat_s * 1e9),
            }
            if spec.max_bytes:
                pull["max_bytes"] = spec.max_bytes
            request = json.dumps(pull).encode()
            health.phase = ConsumerPhase.RUNNING
            backoff = 0.2
            outstanding, expires_at, last_heard, silent_once = 0, 0.0, time.monotonic(), False
            while generation == bus.generation:
                _raise_if_cancel_requested()
                now = time.monotonic()
                if outstanding <= 0 or now >= expires_at:
                    inbox.ended = False
                    await bus.nc.publish(next_subject, request, reply=reply)
                    outstanding, expires_at, last_heard = spec.batch, now + spec.fetch_timeout_s, now
                await inbox.wait(min(spec.heartbeat_s, max(expires_at - time.monotonic(), 0.01)))
                batch: list[Msg] = []
                await in_flight.reserve()
                if spec.linger_s and inbox.msgs:
                    # Until the batch is full or the pull request delivered all it asked for (no more can come).
                    await inbox.linger(inbox.since + spec.linger_s, min(spec.batch, max(outstanding, 1)))
                msgs = inbox.msgs
                if msgs:
                    last_heard, silent_once = time.monotonic(), False
                while msgs and len(batch) < spec.batch:
                    msg = msgs.popleft()
                    status = msg.headers.get(_STATUS) if msg.headers else None
                    if status is None:
                        batch.append(msg)
                        outstanding -= 1
                    elif status != _CONTROL:
                        outstanding = 0  # 404/408/409: this pull request is over
                inbox.took()
                if batch and outstanding <= 0:
                    # Ask for the next batch before this one is handled: the server sends it meanwhile.
                    now = time.monotonic()
                    inbox.ended = False
                    await bus.nc.publish(next_subject, request, reply=reply)
                    outstanding, expires_at, last_heard = spec.batch, now + spec.fetch_timeout_s, now
                if batch:
                    in_flight.submit(_handle_and_ack(handler, batch, health))
                else:
                    in_flight.unreserve()
                in_flight.raise_failure()
                if batch:
                    continue
                if time.monotonic() - last_heard > 3 * spec.heartbeat_s + 1.0:
                    # Silent: first ask again (the request may have been lost), then re-subscribe.
                    if silent_once:
                        raise RuntimeError("no heartbeat from the server")
                    silent_once, outstanding = True, 0
            log.info("batches.resubscribe", durable=spec.durable, generation=bus.generation)
        except asyncio.CancelledError:
            await in_flight.cancel_all()
            if sub is not None:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
            raise
        except Exception as exc:
            await in_flight.cancel_all()
            health.phase = ConsumerPhase.RECONNECTING
            health.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("batches.consumer_restart", durable=spec.durable, error=health.last_error, backoff_s=backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
