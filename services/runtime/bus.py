"""The NATS/JetStream bus: streams declared in code, deduplicated publishes, self-healing pull consumers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import nats
import structlog
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError
from opentelemetry import context as otel_context

from services.runtime.batches import BatchConsumerSpec, ConsumerHealth, consume_batches
from services.runtime.telemetry import extract_context, inject_headers

log = structlog.get_logger("bus")

Handler = Callable[[Msg], Awaitable[None]]


@dataclass(frozen=True)
class StreamSpec:
    """A JetStream stream as code: subjects, retention, storage and the dedup window for Nats-Msg-Id."""

    name: str
    subjects: tuple[str, ...]
    storage: api.StorageType = api.StorageType.FILE
    retention: api.RetentionPolicy = api.RetentionPolicy.LIMITS
    duplicate_window_s: float = 120.0
    max_age_s: float = 0.0
    max_bytes: int = -1
    replicas: int = 1
    # None: every write is flushed and (with the server's sync_interval: always) fsynced before the ack.
    # ASYNC (nats-server >= 2.12, R1 only): the ack comes before the write reaches disk, overriding
    # sync_interval: always for this stream only; a server crash may lose the last unflushed messages.
    persist_mode: api.PersistMode | None = None

    def config(self) -> api.StreamConfig:
        return api.StreamConfig(
            name=self.name,
            subjects=list(self.subjects),
            storage=self.storage,
            retention=self.retention,
            duplicate_window=self.duplicate_window_s,
            max_age=self.max_age_s or None,
            max_bytes=self.max_bytes,
            num_replicas=self.replicas,
            persist_mode=self.persist_mode,
        )


@dataclass(frozen=True)
class ConsumerSpec:
    """A durable pull consumer; heartbeats let it notice a dead server and re-subscribe."""

    stream: str
    durable: str
    filter_subject: str
    batch: int = 256
    fetch_timeout_s: float = 5.0
    heartbeat_s: float = 1.0
    ack_wait_s: float = 30.0


class Bus:
    """One NATS connection per process, shared by publishers and consumers."""

    def __init__(self, url: str, name: str) -> None:
        self.url = url
        self.name = name
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # Bumped on every reconnect: consumers re-create their pull subscriptions when it changes.
        self.generation = 0

    async def _on_reconnect(self) -> None:
        self.generation += 1
        log.info("bus.reconnected", generation=self.generation)

    async def connect(self) -> None:
        self._nc = await nats.connect(
            self.url,
            name=self.name,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            ping_interval=5,
            max_outstanding_pings=3,
            reconnected_cb=self._on_reconnect,
            drain_timeout=2,
        )
        self._js = self._nc.jetstream(timeout=5.0)

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise RuntimeError("bus not connected")
        return self._js

    @property
    def nc(self) -> NatsClient:
        if self._nc is None:
            raise RuntimeError("bus not connected")
        return self._nc

    async def ensure_streams(self, specs: Sequence[StreamSpec]) -> None:
        for spec in specs:
            config = spec.config()
            try:
                info = await self.js.stream_info(spec.name)
                if (info.config.persist_mode or None) != (spec.persist_mode or None):
                    # The server cannot change a stream's persist mode in place (error 10052): keep the
                    # stream's mode; switching means deleting the stream once and letting it be re-created.
                    log.warning(
                        "bus.stream_persist_mode_differs",
                        stream=spec.name,
                        stream_mode=str(info.config.persist_mode),
                        declared_mode=str(spec.persist_mode),
                    )
                    config.persist_mode = info.config.persist_mode
                await self.js.update_stream(config)
            except NotFoundError:
                await self.js.add_stream(config)
            log.info("bus.stream_ready", stream=spec.name, subjects=list(spec.subjects))

    async def publish(
        self,
        subject: str,
        payload: bytes,
        msg_id: str | None = None,
        headers: dict[str, str] | None = None,
        timeout_s: float = 5.0,
    ) -> api.PubAck:
        """Publish to JetStream and wait for the ack; msg_id makes a retry a no-op inside the dedup window."""
        return await self.js.publish(subject, payload, timeout=timeout_s, headers=_headers(msg_id, headers))

    async def send(
        self,
        subject: str,
        payload: bytes,
        msg_id: str | None = None,
        headers: dict[str, str] | None = None,
        timeout_s: float = 5.0,
    ) -> Awaitable[api.PubAck]:
        """Publish to JetStream without waiting: when this returns the message is queued on the connection, after
        every message sent before it; the returned awaitable gives the store's ack (or raises on timeout).

        Lets a caller keep its messages in order while their acks overlap (one round trip for many messages)."""
        future = await self.js.publish_async(subject, payload, headers=_headers(msg_id, headers))

        async def ack() -> api.PubAck:
            async with asyncio.timeout(timeout_s):
                return await future

        return ack()

    def consume(self, spec: ConsumerSpec, handler: Handler) -> asyncio.Task[None]:
        """Run a per-message handler on a durable pull consumer; a message is acked once its handler returned.

        A handler that raises stops the batch (nothing after it is acked) and the consumer re-subscribes with
        backoff; the unacked messages come back after ack_wait, so handlers must be idempotent.
        """
        batch_spec = BatchConsumerSpec(
            stream=spec.stream,
            durable=spec.durable,
            filter_subject=spec.filter_subject,
            batch=spec.batch,
            fetch_timeout_s=spec.fetch_timeout_s,
            heartbeat_s=spec.heartbeat_s,
            ack_wait_s=spec.ack_wait_s,
        )

        async def each(batch: Sequence[Msg]) -> None:
            for msg in batch:
                token = otel_context.attach(extract_context(msg.headers or {}))
                try:
                    await handler(msg)
                finally:
                    otel_context.detach(token)

        task = asyncio.create_task(
            consume_batches(self, batch_spec, each, ConsumerHealth(batch_spec)), name=f"consume:{spec.durable}"
        )
        self._tasks.append(task)
        return task

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._nc is not None and not self._nc.is_closed:
            await self._nc.drain()


def _headers(msg_id: str | None, headers: dict[str, str] | None) -> dict[str, str]:
    """The caller's headers plus the trace context and, when given, the dedup id."""
    hdrs = inject_headers(headers)
    if msg_id:
        hdrs["Nats-Msg-Id"] = msg_id
    return hdrs
