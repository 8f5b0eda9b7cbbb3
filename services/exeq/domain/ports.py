"""What the exeq domain needs from the outside world."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from services.exeq.domain.model import ChildAck, ChildOrder, ParentEvent, ParentOrder

Sleeper = Callable[[float], Awaitable[None]]


class Clock(Protocol):
    def now_ns(self) -> int: ...


class IdGenerator(Protocol):
    def new_id(self) -> str: ...


class TransientError(Exception):
    """A dependency could not answer now (unavailable, deadline exceeded): retry with backoff."""


class ChildRefused(Exception):
    """The OMS refused a child order for good (validation, duplicate id with another spec, ...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class ChildOrderGateway(Protocol):
    """Child orders go through the OMS (risk check, journal) like every other order."""

    async def submit(self, parent: ParentOrder, child: ChildOrder) -> ChildAck:
        """Idempotent on the child's client_order_id. Raises TransientError or ChildRefused."""
        ...

    async def cancel(self, parent: ParentOrder, child: ChildOrder) -> None:
        """Ask the OMS to cancel the child; the outcome arrives as an order event. Raises TransientError."""
        ...

    async def list_children(self, parent: ParentOrder) -> list[ChildOrder]:
        """The parent's child orders as the OMS knows them (for a restart). Raises TransientError."""
        ...


class ParentEventSink(Protocol):
    async def publish(self, event: ParentEvent) -> None:
        """Durably publish the event (JetStream EXEQ, deduplicated by event_id); raises when it could not."""
        ...
