"""Stand-ins for snapshot tests: an in-memory snapshot store, and a bus whose streams have a given identity."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from typing import Any

from services.runtime.snapshots import SnapshotStore


class MemorySnapshotStore(SnapshotStore):
    def __init__(self, data: bytes | None = None, *, fail_saves: bool = False) -> None:
        self.data = data
        self.fail_saves = fail_saves

    async def load(self, name: str) -> bytes | None:
        return self.data

    async def save(self, name: str, data: bytes) -> None:
        if self.fail_saves:
            raise TimeoutError("object store not answering")
        self.data = data


def streams(created: datetime, last_seq: int) -> Any:
    """A bus (as far as snapshots look at it) whose every stream was created at `created` and ends at `last_seq`."""

    async def stream_info(name: str) -> Any:
        return SimpleNamespace(created=created, state=SimpleNamespace(last_seq=last_seq))

    return SimpleNamespace(js=SimpleNamespace(stream_info=stream_info))
