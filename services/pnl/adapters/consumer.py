"""Feeds the PnL service: a replay of FILLS (state rebuilt), then a durable batch consumer; fills of symbols
without a mark yet are primed with the last stored quote."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

import structlog
from nats.aio.msg import Msg

from services.pnl.adapters import jetstream
from services.pnl.adapters.codec import MalformedFill, decode_fill
from services.pnl.domain.model import FillRecord
from services.pnl.domain.service import PnlService
from services.runtime.batches import BatchConsumerSpec, ConsumerHealth, consume_batches
from services.runtime.bus import Bus
from services.runtime.errors import DomainError, ErrorKind

log = structlog.get_logger("pnl.consumer")


def decode_logged(payloads: Sequence[tuple[int, bytes]]) -> tuple[list[FillRecord], int]:
    """The well-formed fills of (stream sequence, payload) pairs, each with its sequence, and how many were not."""
    out, malformed = [], 0
    for sequence, data in payloads:
        try:
            out.append(replace(decode_fill(data), sequence=sequence))
        except MalformedFill as exc:
            malformed += 1
            log.warning("pnl.malformed_fill", sequence=sequence, error=str(exc))
    return out, malformed


class JetStreamFillLog:
    """One account's fills read back from FILLS (the PnL service's FillLog)."""

    def __init__(self, bus: Bus, stream: str, account_subject: str, timeout_s: float = 5.0) -> None:
        """account_subject: one account's fills, with "{account}" as placeholder (e.g. "fills.{account}.>")."""
        self._bus = bus
        self._stream = stream
        self._account_subject = account_subject
        self._timeout = timeout_s

    async def fills_of(self, account_id: str, up_to_sequence: int) -> list[FillRecord]:
        subject = self._account_subject.format(account=account_id)
        try:
            logged = await jetstream.replay(self._bus, self._stream, subject, up_to_sequence, self._timeout)
        except Exception as exc:
            raise DomainError(
                "DEPENDENCY_UNAVAILABLE", f"reading the fill log failed: {exc!r}", ErrorKind.UNAVAILABLE
            ) from exc
        return decode_logged(logged)[0]


class FillConsumer:
    def __init__(
        self,
        bus: Bus,
        service: PnlService,
        spec: BatchConsumerSpec,
        prime_marks: Callable[[set[str]], Awaitable[None]],
        replay_timeout_s: float = 5.0,
    ) -> None:
        self._bus = bus
        self._service = service
        self._spec = spec
        self._prime = prime_marks
        self._timeout = replay_timeout_s
        self.health = ConsumerHealth(spec)
        self.malformed = 0
        self._task: asyncio.Task[None] | None = None

    def _decode(self, payloads: Sequence[tuple[int, bytes]]) -> list[FillRecord]:
        fills, malformed = decode_logged(payloads)
        self.malformed += malformed
        return fills

    async def _handle(self, msgs: Sequence[Msg]) -> None:
        fills = self._decode([(m.metadata.sequence.stream, m.data) for m in msgs])
        await self._service.handle(fills)
        unmarked = {f.symbol for f in fills if self._service.ledger.mark(f.symbol) is None}
        if unmarked:
            await self._prime(unmarked)

    async def start(self) -> None:
        end = await jetstream.last_sequence(self._bus, self._spec.stream)
        logged = await jetstream.replay(self._bus, self._spec.stream, self._spec.filter_subject, end, self._timeout)
        fills = self._decode(logged)
        await self._prime({f.symbol for f in fills})
        applied = self._service.replay(fills)
        log.info("pnl.rebuilt", fills=applied, sequence=end)
        spec = replace(self._spec, start_sequence=end + 1)
        self.health = ConsumerHealth(spec)
        self._task = asyncio.create_task(
            consume_batches(self._bus, spec, self._handle, self.health), name=f"pnl:{spec.durable}"
        )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
