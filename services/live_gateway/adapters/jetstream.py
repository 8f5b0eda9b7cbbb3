"""JetStream side of the gateway: reports to EXEC and fills to FILLS with Nats-Msg-Id, resume points from EXEC."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta

from nats.errors import Error as NatsError
from nats.js import api
from nats.js.errors import NotFoundError
from trade.live_gateway.v1 import events_pb2

from services.live_gateway.adapters.codec import fill_pb, report_pb
from services.live_gateway.domain.ids import exec_subject, fill_subject
from services.live_gateway.domain.model import ExecutionReport, Fill, Venue
from services.runtime.bus import Bus
from services.runtime.errors import DomainError, ErrorKind
from services.runtime.streams import EXEC

# On every report: the venue sequence up to which all events of its venue/account have been published.
RESUME_HEADER = "Trade-Resume-Sequence"


def _unavailable(exc: Exception) -> DomainError:
    # UNAVAILABLE, not an unhandled INTERNAL: the caller (exeq) retries the same order id, and the retry gets the
    # venue's original answer while the reports go out again.
    return DomainError(
        "DEPENDENCY_UNAVAILABLE", f"JetStream did not take the report: {type(exc).__name__}", ErrorKind.UNAVAILABLE
    )


async def _stored(ack: Awaitable[api.PubAck]) -> bool:
    try:
        return not (await ack).duplicate
    except (NatsError, TimeoutError) as exc:
        raise _unavailable(exc) from exc


class JetStreamReports:
    """ReportPublisher and Checkpoints over the mesh's JetStream streams EXEC and FILLS."""

    def __init__(
        self, bus: Bus, exec_stream: str = EXEC.name, resume_window_s: float = EXEC.duplicate_window_s
    ) -> None:
        self._bus = bus
        self._stream = exec_stream
        self._resume_window_s = resume_window_s

    async def _send(
        self, subject: str, payload: bytes, msg_id: str, headers: dict[str, str] | None = None
    ) -> Awaitable[api.PubAck]:
        try:
            return await self._bus.send(subject, payload, msg_id=msg_id, headers=headers)
        except (NatsError, TimeoutError) as exc:
            raise _unavailable(exc) from exc

    async def send_fill(self, fill: Fill) -> Awaitable[bool]:
        subject = fill_subject(fill.account_id, fill.symbol)
        return _stored(await self._send(subject, fill_pb(fill).SerializeToString(), fill.fill_id))

    async def send_report(self, report: ExecutionReport, resume_sequence: int) -> Awaitable[bool]:
        ex = report.execution
        ack = await self._send(
            exec_subject(ex.venue, ex.account_id),
            report_pb(report).SerializeToString(),
            report.report_id,
            {RESUME_HEADER: str(resume_sequence)},
        )
        return _stored(ack)

    async def accounts(self, venue: Venue) -> list[str]:
        """Accounts whose last report of this venue is recent (their executions are streamed again on start).

        Older ones are left out: resuming them would replay beyond JetStream's dedup window, and an account that
        trades again starts streaming with its next order anyway.
        """
        info = await self._bus.js.stream_info(self._stream, subjects_filter=exec_subject(venue, "*"))
        prefix = exec_subject(venue, "")
        cutoff = datetime.now(UTC) - timedelta(seconds=self._resume_window_s)
        accounts = []
        for subject in sorted(info.state.subjects or {}):
            try:
                last = await self._bus.js.get_last_msg(self._stream, subject)
            except NotFoundError:
                continue
            if last.time is None or last.time >= cutoff:
                accounts.append(subject.removeprefix(prefix))
        return accounts

    async def last_sequence(self, venue: Venue, account_id: str) -> int:
        try:
            msg = await self._bus.js.get_last_msg(self._stream, exec_subject(venue, account_id))
        except NotFoundError:
            return 0
        header = (msg.headers or {}).get(RESUME_HEADER)
        if header is not None and header.isdigit():
            return int(header)
        report = events_pb2.ExecutionReport.FromString(msg.data or b"")
        return report.venue_sequence
