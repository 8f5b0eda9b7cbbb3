"""Publishes what the feed receives to NATS as trade.normalizer.v1.RawMarketData on md.raw.binance_spot.<SYMBOL>.

- A WebSocket frame is published with ``payload`` = the frame bytes exactly as received (the combined-stream
  envelope ``{"stream":..., "data":...}``), ``venue_sequence`` = trade id / bookTicker ``u`` / depth ``u``.
- Each REST depth snapshot the synchroniser accepted is published too, ``payload`` = the REST body unmodified
  (``{"lastUpdateId":..., "bids":..., "asks":...}``, recognisable by having no ``stream`` key),
  ``venue_sequence`` = ``lastUpdateId``: a consumer can rebuild the book with the same ``DepthSync`` the feed uses.
- ``Nats-Msg-Id`` = ``binance_spot:<SYMBOL>:<kind>:<venue_sequence>``. The kind is part of the id because
  Binance's three sequences overlap: a bookTicker ``u`` and a depth event's ``u`` come from the same update-id
  space and can be equal, and JetStream deduplication would silently drop one of them.

Messages are published in the order they were handed over, by one worker, through a bounded queue (a slow NATS
slows the reader rather than growing memory); a failed publish is retried, which deduplication makes safe.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import structlog
from trade.normalizer.v1 import events_pb2
from trade.type.v1 import venue_pb2

from services.feeds.binance.protocol import VENUE_TOKEN, DepthSnapshot, Frame
from services.feeds.binance.ratelimit import Backoff

log = structlog.get_logger("feeds.binance.publisher")


class Publisher(Protocol):
    """The part of services.runtime.bus.Bus the sink uses."""

    async def publish(
        self,
        subject: str,
        payload: bytes,
        msg_id: str | None = None,
        headers: dict[str, str] | None = None,
        timeout_s: float = 5.0,
    ) -> Any: ...


def raw_subject(symbol: str) -> str:
    return f"md.raw.{VENUE_TOKEN}.{symbol}"


def raw_msg_id(symbol: str, kind: str, sequence: int) -> str:
    return f"{VENUE_TOKEN}:{symbol}:{kind}:{sequence}"


def _raw(symbol: str, payload: bytes, sequence: int, receive_time_ns: int) -> events_pb2.RawMarketData:
    return events_pb2.RawMarketData(
        venue=venue_pb2.VENUE_BINANCE_SPOT,
        symbol=symbol,
        format=events_pb2.RAW_PAYLOAD_FORMAT_JSON,
        payload=payload,
        venue_sequence=sequence,
        receive_time_ns=receive_time_ns,
    )


def frame_message(frame: Frame, receive_time_ns: int) -> events_pb2.RawMarketData:
    return _raw(frame.symbol, frame.raw, frame.venue_sequence, receive_time_ns)


def snapshot_message(snapshot: DepthSnapshot, body: bytes, receive_time_ns: int) -> events_pb2.RawMarketData:
    return _raw(snapshot.symbol, body, snapshot.last_update_id, receive_time_ns)


class NatsRawSink:
    """A FeedSink that publishes RawMarketData through the bus; ``run()`` is the publishing worker."""

    def __init__(self, bus: Publisher, queue_size: int = 10_000, publish_timeout_s: float = 5.0) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[tuple[str, bytes, str]] = asyncio.Queue(queue_size)
        self._timeout_s = publish_timeout_s
        self.published = 0
        self.duplicates = 0
        self.retries = 0

    async def on_frame(self, frame: Frame, receive_time_ns: int) -> None:
        msg = frame_message(frame, receive_time_ns)
        msg_id = raw_msg_id(frame.symbol, frame.kind, frame.venue_sequence)
        await self._queue.put((raw_subject(frame.symbol), msg.SerializeToString(), msg_id))

    async def on_snapshot(self, snapshot: DepthSnapshot, body: bytes, receive_time_ns: int) -> None:
        msg = snapshot_message(snapshot, body, receive_time_ns)
        await self._queue.put(
            (
                raw_subject(snapshot.symbol),
                msg.SerializeToString(),
                raw_msg_id(snapshot.symbol, "snapshot", snapshot.last_update_id),
            )
        )

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    async def drain(self) -> None:
        """Wait until everything handed over so far has been published."""
        await self._queue.join()

    async def run(self) -> None:
        backoff = Backoff(0.1, 5.0)
        while True:
            subject, payload, msg_id = await self._queue.get()
            while True:
                try:
                    ack = await self._bus.publish(subject, payload, msg_id=msg_id, timeout_s=self._timeout_s)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.retries += 1
                    delay = backoff.next_delay()
                    log.warning("binance.publish_retry", subject=subject, error=repr(exc), backoff_s=round(delay, 3))
                    await asyncio.sleep(delay)
                    continue
                backoff.reset()
                self.published += 1
                if getattr(ack, "duplicate", False):
                    self.duplicates += 1
                break
            self._queue.task_done()
