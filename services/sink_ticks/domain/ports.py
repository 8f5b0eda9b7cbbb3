"""What the sink domain needs from the outside world."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from services.sink_ticks.domain.model import QuoteRow, TradeRow


class TickWriter(Protocol):
    """Writes rows to the tick store; returns only once the store accepted them (raises otherwise)."""

    async def write(self, trades: Sequence[TradeRow], quotes: Sequence[QuoteRow]) -> None: ...

    async def reset(self) -> None:
        """Drop the connection after a failure; the next write reconnects."""
        ...


class Clock(Protocol):
    def now_ns(self) -> int: ...


Sleeper = Callable[[float], Awaitable[None]]
