"""What the PnL service needs from the outside world."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from services.pnl.domain.model import FillRecord, Snapshot


class FillLog(Protocol):
    async def fills_of(self, account_id: str, up_to_sequence: int) -> list[FillRecord]:
        """The account's well-formed fills on FILLS up to the sequence, in log order (each with its sequence)."""
        ...


class SnapshotPublisher(Protocol):
    async def publish(self, snapshots: Sequence[Snapshot]) -> None:
        """Store the snapshots on PNL (idempotent by snapshot id); raises if they were not stored."""
        ...


class DailyStore(Protocol):
    def add(self, snapshot: Snapshot) -> None:
        """Keep an end-of-day snapshot for ListDailySnapshots."""
        ...


class PnlListener(Protocol):
    """Open PnL streams: fill-driven changes go out at once, mark-driven ones throttled."""

    def fills(self, accounts: set[str]) -> None: ...

    def marks(self, accounts: set[str]) -> None: ...


class Clock(Protocol):
    def now_ns(self) -> int: ...
