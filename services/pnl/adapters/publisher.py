"""PnlSnapshot publisher: pnl.<account_id> on JetStream PNL, Nats-Msg-Id = snapshot_id."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from services.pnl.adapters.codec import snapshot_pb
from services.pnl.domain.model import Snapshot
from services.runtime.bus import Bus


class JetStreamSnapshotPublisher:
    def __init__(self, bus: Bus, subject_prefix: str = "pnl") -> None:
        self._bus = bus
        self._prefix = subject_prefix

    async def publish(self, snapshots: Sequence[Snapshot]) -> None:
        await asyncio.gather(
            *(
                self._bus.publish(f"{self._prefix}.{s.account_id}", snapshot_pb(s).SerializeToString(), s.snapshot_id)
                for s in snapshots
            )
        )
