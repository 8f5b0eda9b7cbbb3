"""Publishes feed messages to JetStream (MD_RAW), pipelined: up to ``max_in_flight`` publishes wait for their ack
at once, so the simulation loop never stalls on one fsync per message (JetStream here syncs every write).

Publishes go out on the connection in the order given (one coroutine sends them); acks are awaited oldest first.
A publish whose ack fails or times out is sent again with the same Nats-Msg-Id ("prism:<symbol>:<sequence>"),
which the stream's deduplication window makes harmless.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from nats.js import api
from nats.js.errors import NotFoundError

from services.prism.adapters.feed_codec import envelope, msg_id_for, sequence_of, subject_for
from services.prism.domain.feed import FeedMessage
from services.runtime.bus import Bus
from services.runtime.streams import MARKET_DATA_RAW

log = structlog.get_logger("prism.publisher")


@dataclass
class _InFlight:
    ack: asyncio.Future[api.PubAck]
    subject: str
    payload: bytes
    msg_id: str
    deadline: float


class NatsFeedPublisher:
    """A FeedSink on the bus."""

    def __init__(self, bus: Bus, max_in_flight: int = 256, ack_timeout_s: float = 5.0) -> None:
        self.bus = bus
        self.max_in_flight = max_in_flight
        self.ack_timeout_s = ack_timeout_s
        self._in_flight: deque[_InFlight] = deque()
        self.published = 0
        self.republished = 0

    async def last_sequences(self, symbols: Sequence[str]) -> dict[str, int]:
        """The last feed sequence stored in MD_RAW per symbol (0 if none): where a restarted prism continues."""
        out: dict[str, int] = {}
        for symbol in symbols:
            try:
                msg = await self.bus.js.get_last_msg(MARKET_DATA_RAW.name, subject_for(symbol))
            except NotFoundError:
                out[symbol] = 0
                continue
            out[symbol] = sequence_of(msg.data or b"")
        return out

    async def publish(self, messages: Sequence[FeedMessage]) -> None:
        js = self.bus.js
        now = time.time_ns()
        for message in messages:
            subject, payload, msg_id = subject_for(message.symbol), envelope(message, now), msg_id_for(message)
            ack = await js.publish_async(subject, payload, headers={"Nats-Msg-Id": msg_id})
            deadline = asyncio.get_running_loop().time() + self.ack_timeout_s
            self._in_flight.append(_InFlight(ack, subject, payload, msg_id, deadline))
            while len(self._in_flight) > self.max_in_flight:
                await self._settle(self._in_flight.popleft())

    async def flush(self) -> None:
        """Wait for every outstanding ack."""
        while self._in_flight:
            await self._settle(self._in_flight.popleft())

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def _settle(self, entry: _InFlight) -> None:
        try:
            # The deadline runs from the send, so acks lost together (a NATS restart) time out together instead
            # of one ack_timeout each in turn.
            async with asyncio.timeout_at(entry.deadline):
                await entry.ack
            self.published += 1
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("prism.publish_retry", subject=entry.subject, msg_id=entry.msg_id, error=repr(exc))
        delay = 0.1
        while True:
            try:
                await self.bus.publish(entry.subject, entry.payload, msg_id=entry.msg_id, timeout_s=self.ack_timeout_s)
                self.published += 1
                self.republished += 1
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("prism.publish_retry", subject=entry.subject, msg_id=entry.msg_id, error=repr(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
