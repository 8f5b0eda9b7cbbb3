"""In-process fan-out of "PnL changed" to open StreamPnl calls: flags per stream (a fill changed it, a mark
moved it), never a queue, so a slow stream only ever misses intermediate states."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field


@dataclass
class PnlSubscription:
    id: int
    account_id: str
    fill_changed: bool = False
    mark_changed: bool = False
    signal: asyncio.Event = field(default_factory=asyncio.Event)
    conflated: int = 0


class PnlHub:
    def __init__(self) -> None:
        self._subs: dict[int, PnlSubscription] = {}
        self._ids = itertools.count(1)

    def subscribe(self, account_id: str) -> PnlSubscription:
        sub = PnlSubscription(next(self._ids), account_id)
        self._subs[sub.id] = sub
        return sub

    def unsubscribe(self, sub: PnlSubscription) -> None:
        self._subs.pop(sub.id, None)

    def fills(self, accounts: set[str]) -> None:
        for sub in self._subs.values():
            if sub.account_id in accounts:
                sub.fill_changed = True
                sub.signal.set()

    def marks(self, accounts: set[str]) -> None:
        for sub in self._subs.values():
            if sub.account_id in accounts:
                if sub.mark_changed:
                    sub.conflated += 1
                sub.mark_changed = True
                sub.signal.set()
