"""What the writer domain needs from the outside world."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from services.questdb_writer.domain.model import Kind, Row


class RowWriter(Protocol):
    """Writes rows of one kind to its table; returns only once the store accepted them (raises otherwise)."""

    async def write(self, kind: Kind, rows: Sequence[Row]) -> None: ...


class Clock(Protocol):
    def now_ns(self) -> int: ...


Sleeper = Callable[[float], Awaitable[None]]
