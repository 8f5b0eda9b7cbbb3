"""End-of-day snapshots kept for ListDailySnapshots: rebuilt from JetStream PNL at start, added at each close."""

from __future__ import annotations

from trade.pnl.v1 import events_pb2

from services.pnl.adapters.codec import snapshot_pb
from services.pnl.domain.model import Snapshot


class DailySnapshotStore:
    def __init__(self) -> None:
        self._by_account: dict[str, dict[str, events_pb2.PnlSnapshot]] = {}

    def add(self, snapshot: Snapshot) -> None:
        self.add_pb(snapshot_pb(snapshot))

    def add_pb(self, snapshot: events_pb2.PnlSnapshot) -> bool:
        if snapshot.kind != events_pb2.PNL_SNAPSHOT_KIND_END_OF_DAY or not snapshot.trading_day:
            return False
        self._by_account.setdefault(snapshot.account_id, {})[snapshot.trading_day] = snapshot
        return True

    def list(self, account_id: str, start_day: str = "", end_day: str = "") -> list[events_pb2.PnlSnapshot]:
        """The account's daily snapshots within [start_day, end_day], newest trading day first."""
        days = self._by_account.get(account_id, {})
        return [
            days[day]
            for day in sorted(days, reverse=True)
            if (not start_day or day >= start_day) and (not end_day or day <= end_day)
        ]
