"""Bounded per-subscriber queues: a slow client never grows server memory without bound.

- quotes conflate: only the latest item per key (symbol) is kept while the client lags;
- trades drop the oldest item when full;
- book deltas conflate into a fresh snapshot: on overflow the queued deltas are discarded and the next
  thing the client gets is a snapshot.

Each queue counts what it conflated or dropped; the stream reports the counters on its heartbeat.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


class _Signal:
    """Wakes the one consumer of a queue."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()

    async def wait(self, timeout_s: float) -> None:
        if not self._event.is_set():
            try:
                async with asyncio.timeout(timeout_s):  # not wait_for: on 3.11 it can swallow a racing cancel
                    await self._event.wait()
            except TimeoutError:
                return
        self._event.clear()


class ConflatingQueue(Generic[K, T]):
    """Latest item per key, in order of first arrival; at most `capacity` keys (oldest key dropped beyond)."""

    def __init__(self, key: Callable[[T], K], capacity: int) -> None:
        self.key = key
        self.capacity = capacity
        self.items: OrderedDict[K, T] = OrderedDict()
        self.conflated = 0
        self.dropped = 0
        self.signal = _Signal()

    def put(self, item: T) -> None:
        k = self.key(item)
        if k in self.items:
            self.items[k] = item  # keep the queue position, replace the value
            self.conflated += 1
        else:
            if len(self.items) >= self.capacity:
                self.items.popitem(last=False)
                self.dropped += 1
            self.items[k] = item
        self.signal.notify()

    def drain(self) -> list[T]:
        out = list(self.items.values())
        self.items.clear()
        return out

    def __len__(self) -> int:
        return len(self.items)


class DropOldestQueue(Generic[T]):
    """FIFO of at most `capacity` items; when full the oldest is dropped (and counted)."""

    def __init__(self, capacity: int) -> None:
        self.items: deque[T] = deque()
        self.capacity = capacity
        self.conflated = 0
        self.dropped = 0
        self.signal = _Signal()

    def put(self, item: T) -> None:
        if len(self.items) >= self.capacity:
            self.items.popleft()
            self.dropped += 1
        self.items.append(item)
        self.signal.notify()

    def drain(self, limit: int = 0) -> list[T]:
        if limit <= 0 or limit >= len(self.items):
            out = list(self.items)
            self.items.clear()
            return out
        return [self.items.popleft() for _ in range(limit)]

    def __len__(self) -> int:
        return len(self.items)


class BookQueue(Generic[T]):
    """Deltas of one book view, at most `capacity`; overflow discards them and asks for a fresh snapshot.

    Starts with `needs_snapshot` set: a book stream always begins with a snapshot.
    """

    def __init__(self, capacity: int) -> None:
        self.items: deque[T] = deque()
        self.capacity = capacity
        self.needs_snapshot = True
        self.snapshots_sent = 0
        self.conflated = 0
        self.dropped = 0
        self.signal = _Signal()

    def put(self, item: T) -> None:
        if self.needs_snapshot:
            if self.snapshots_sent:
                self.conflated += 1  # the coming snapshot includes it
            return
        if len(self.items) >= self.capacity:
            self.conflated += len(self.items) + 1
            self.items.clear()
            self.needs_snapshot = True
        else:
            self.items.append(item)
        self.signal.notify()

    def resync(self) -> None:
        """The source book was re-synchronized: queued deltas are void, a snapshot must follow."""
        self.items.clear()
        self.needs_snapshot = True
        self.signal.notify()

    def snapshot_sent(self) -> None:
        self.needs_snapshot = False
        self.snapshots_sent += 1

    def drain(self) -> list[T]:
        out = list(self.items)
        self.items.clear()
        return out

    def __len__(self) -> int:
        return len(self.items)
