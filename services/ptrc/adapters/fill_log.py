"""The fill log read from the start: an ephemeral ordered consumer on FILLS (it detects gaps and re-creates
itself, so no fill of the replayed range is skipped), stopped at a given stream sequence."""

from __future__ import annotations

import contextlib

import structlog
from nats.js import api
from nats.js.errors import NotFoundError

from services.ptrc.adapters.codec import MalformedFill, decode_fill
from services.ptrc.domain.model import LoggedFill
from services.runtime.bus import Bus
from services.runtime.errors import DomainError, ErrorKind

log = structlog.get_logger("ptrc.fill_log")


class JetStreamFillLog:
    def __init__(self, bus: Bus, stream: str, message_timeout_s: float = 5.0) -> None:
        self._bus = bus
        self._stream = stream
        self._timeout = message_timeout_s
        self.malformed = 0

    async def last_sequence(self) -> int:
        try:
            info = await self._bus.js.stream_info(self._stream)
        except NotFoundError:
            return 0
        return int(info.state.last_seq or 0)

    async def replay(self, filter_subject: str, up_to_sequence: int) -> list[LoggedFill]:
        if up_to_sequence <= 0:
            return []
        try:
            return await self._replay(filter_subject, up_to_sequence)
        except DomainError:
            raise
        except Exception as exc:
            raise DomainError(
                "DEPENDENCY_UNAVAILABLE", f"reading the fill log failed: {exc!r}", ErrorKind.UNAVAILABLE
            ) from exc

    async def _replay(self, filter_subject: str, up_to_sequence: int) -> list[LoggedFill]:
        sub = await self._bus.js.subscribe(
            filter_subject,
            stream=self._stream,
            ordered_consumer=True,
            config=api.ConsumerConfig(deliver_policy=api.DeliverPolicy.ALL, mem_storage=True),
            pending_msgs_limit=-1,
            pending_bytes_limit=-1,
        )
        out: list[LoggedFill] = []
        try:
            info = await sub.consumer_info()
            # Messages are either still pending or already pushed to us: neither means nothing matches.
            if not info.num_pending and not (info.delivered and info.delivered.consumer_seq):
                return out
            while True:
                msg = await sub.next_msg(timeout=self._timeout)
                meta = msg.metadata
                if meta.sequence.stream > up_to_sequence:
                    break
                try:
                    out.append(LoggedFill(meta.sequence.stream, decode_fill(msg.data)))
                except MalformedFill as exc:
                    self.malformed += 1
                    log.warning("ptrc.malformed_fill", sequence=meta.sequence.stream, error=str(exc))
                if meta.sequence.stream >= up_to_sequence or not meta.num_pending:
                    break
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        return out
