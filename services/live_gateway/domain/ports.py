"""What the gateway needs from the outside world: venues, a publisher, resume points, a clock."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Protocol

from services.live_gateway.domain.model import (
    AmendOrder,
    AmendResult,
    CancelOrder,
    CancelResult,
    ConnectionStatus,
    ExecutionReport,
    Fill,
    PlaceOrder,
    PlaceResult,
    Venue,
    VenueCapabilities,
    VenueExecution,
)


class Clock(Protocol):
    def now_ns(self) -> int: ...


class ExecutionSink(Protocol):
    """Where an adapter hands every venue event, in the venue's order (several at once when they queued up).

    advance_checkpoint is True only for events of the venue's sequenced, resumable stream delivered in order (so
    the resume point may move past them); events also seen elsewhere (an RPC response) pass False.
    """

    async def __call__(self, executions: Sequence[VenueExecution], advance_checkpoint: bool) -> None: ...


class Checkpoints(Protocol):
    """Where the gateway's resume points survive its restart (the last report it published per venue/account)."""

    async def accounts(self, venue: Venue) -> list[str]: ...

    async def last_sequence(self, venue: Venue, account_id: str) -> int: ...


class VenueAdapter(Protocol):
    """One venue. place/cancel/amend raise VenueRejected, VenueUnavailable, VenueRateLimited or NotSupported."""

    @property
    def venue(self) -> Venue: ...

    @property
    def capabilities(self) -> VenueCapabilities: ...

    async def start(self, sink: ExecutionSink, checkpoints: Checkpoints) -> None: ...

    async def stop(self) -> None: ...

    async def place(self, order: PlaceOrder) -> PlaceResult: ...

    async def cancel(self, cancel: CancelOrder) -> CancelResult: ...

    async def amend(self, amend: AmendOrder) -> AmendResult: ...

    def status(self) -> ConnectionStatus: ...


class ReportPublisher(Protocol):
    """Durable, deduplicated publishing. Each send returns once the message is on its way (after every message
    sent before it); awaiting what it returns gives True when stored, False for a duplicate, or raises."""

    async def send_fill(self, fill: Fill) -> Awaitable[bool]: ...

    async def send_report(self, report: ExecutionReport, resume_sequence: int) -> Awaitable[bool]: ...
