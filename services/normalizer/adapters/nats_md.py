"""NATS side of the normalizer: publish canonical events to MD, read back the last sequences after a restart."""

from __future__ import annotations

import asyncio
import time

import structlog
from nats.js.errors import NotFoundError

from services.normalizer.adapters.codec import batch_bytes, resume_sequences
from services.normalizer.domain.model import Event, Sequences, Venue
from services.runtime.bus import Bus
from services.runtime.streams import MARKET_DATA

log = structlog.get_logger("normalizer.nats")


def md_messages(events: list[Event], publish_time_ns: int, max_events: int) -> list[tuple[str, bytes, str]]:
    """(subject, MarketDataBatch bytes, Nats-Msg-Id) per group of at most max_events events of a subject; each
    subject keeps its events' order."""
    by_subject: dict[str, list[Event]] = {}
    for event in events:
        by_subject.setdefault(event.subject, []).append(event)
    out = []
    for subject, group in by_subject.items():
        for i in range(0, len(group), max_events):
            part = group[i : i + max_events]
            out.append((subject, batch_bytes(part, publish_time_ns), f"{part[0].event_id}+{len(part)}"))
    return out


class MarketDataPublisher:
    """Publishes canonical events, the events of a subject grouped into MarketDataBatch messages of at most
    max_events (Nats-Msg-Id = first event id + count, so a retry or a replay is deduplicated)."""

    def __init__(self, bus: Bus, attempts: int = 20, max_events: int = 256) -> None:
        self.bus = bus
        self.attempts = attempts
        self.max_events = max_events

    async def publish(self, events: list[Event]) -> None:
        """Publish all messages pipelined (written in order, acks awaited together); retry the ones that failed."""
        pending = md_messages(events, time.time_ns(), self.max_events)
        for attempt in range(self.attempts):
            results = await asyncio.gather(
                *(self.bus.publish(subject, data, msg_id=msg_id) for subject, data, msg_id in pending),
                return_exceptions=True,
            )
            failed = [p for p, r in zip(pending, results, strict=True) if isinstance(r, Exception)]
            if not failed:
                return
            errors = [r for r in results if isinstance(r, Exception)]
            if attempt == self.attempts - 1:
                raise errors[0]
            log.warning("normalizer.publish_retry", failed=len(failed), error=repr(errors[0]), attempt=attempt)
            pending = failed
            await asyncio.sleep(min(0.1 * 2**attempt, 2.0))

    async def last_sequences(self, symbol: str) -> tuple[Sequences, Venue]:
        """The sequences last published for a symbol, so a restarted normalizer continues them."""
        found = []
        for kind in ("quote", "trade", "book"):
            try:
                msg = await self.bus.js.get_last_msg(MARKET_DATA.name, f"md.{kind}.{symbol}")
            except NotFoundError:
                continue
            if msg.data:
                found.append(msg.data)
        return resume_sequences(found)
