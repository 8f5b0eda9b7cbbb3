"""What the position service needs from the outside world."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from services.ptrc.domain.model import LoggedFill, PositionChange


class FillLog(Protocol):
    """The fill log (JetStream FILLS), read from the start."""

    async def last_sequence(self) -> int:
        """The log's current last sequence (0 when empty)."""
        ...

    async def replay(self, filter_subject: str, up_to_sequence: int) -> list[LoggedFill]:
        """Every well-formed fill matching the filter with a sequence <= up_to_sequence, in log order."""
        ...


class EventPublisher(Protocol):
    async def publish(self, changes: Sequence[PositionChange]) -> None:
        """Publish a PositionEvent per change; returns once all are stored (raises otherwise). Idempotent by
        event id, so publishing a change again is harmless."""
        ...


class ChangeListener(Protocol):
    def notify(self, changes: Sequence[PositionChange]) -> None: ...
