"""In-process fan-out of position changes to open StreamPositions calls. A slow stream is conflated: only the
latest position per symbol waits for it, so one client can never hold back the consumer."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from services.ptrc.domain.model import Position, PositionChange


@dataclass
class Subscription:
    id: int
    account_id: str
    symbols: frozenset[str]
    pending: dict[str, Position] = field(default_factory=dict)
    signal: asyncio.Event = field(default_factory=asyncio.Event)
    conflated: int = 0

    def wants(self, position: Position) -> bool:
        return position.account_id == self.account_id and (not self.symbols or position.symbol in self.symbols)

    def offer(self, position: Position) -> None:
        if position.symbol in self.pending:
            self.conflated += 1
        self.pending[position.symbol] = position
        self.signal.set()

    def drain(self) -> list[Position]:
        out = list(self.pending.values())
        self.pending.clear()
        self.signal.clear()
        return out


class PositionHub:
    def __init__(self) -> None:
        self._subs: dict[int, Subscription] = {}
        self._ids = itertools.count(1)

    def subscribe(self, account_id: str, symbols: frozenset[str]) -> Subscription:
        sub = Subscription(next(self._ids), account_id, symbols)
        self._subs[sub.id] = sub
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.pop(sub.id, None)

    def notify(self, changes: Sequence[PositionChange]) -> None:
        for change in changes:
            for sub in self._subs.values():
                if sub.wants(change.position):
                    sub.offer(change.position)

    @property
    def count(self) -> int:
        return len(self._subs)
