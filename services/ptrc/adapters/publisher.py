"""PositionEvent publisher: positions.<account_id>.<symbol> on JetStream POSITIONS, Nats-Msg-Id = event_id."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from trade.ptrc.v1 import events_pb2

from services.ptrc.adapters.codec import position_pb
from services.ptrc.domain.model import PositionChange
from services.runtime.bus import Bus

_CHUNK = 256


def position_event(change: PositionChange, publish_time_ns: int) -> events_pb2.PositionEvent:
    return events_pb2.PositionEvent(
        event_id=change.event_id,
        position=position_pb(change.position),
        fill_id=change.fill_id,
        reconciliation=change.reconciliation,
        publish_time_ns=publish_time_ns,
    )


class JetStreamPositionPublisher:
    def __init__(self, bus: Bus, subject_prefix: str = "positions") -> None:
        self._bus = bus
        self._prefix = subject_prefix

    async def publish(self, changes: Sequence[PositionChange]) -> None:
        now = time.time_ns()
        for start in range(0, len(changes), _CHUNK):
            await asyncio.gather(
                *(
                    self._bus.publish(
                        f"{self._prefix}.{c.position.account_id}.{c.position.symbol}",
                        position_event(c, now).SerializeToString(),
                        c.event_id,
                    )
                    for c in changes[start : start + _CHUNK]
                )
            )
