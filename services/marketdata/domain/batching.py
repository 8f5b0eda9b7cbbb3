"""Batched fan-out: subscribers that opted into batches and share a filter share the encoded batches.

A `BatchGroup` is registered once in the fan-out (like one subscriber) for every distinct (symbols, max_batch,
window) of batched streams. It collects the updates for `window_s` (or until `max_batch` are pending), encodes
them ONCE into a `Frame` (the adapter's wire bytes), and appends the same frame to the `FrameQueue` of every
member stream. So the per-update cost of N identical subscribers is one encode plus N queue appends, and each
stream writes whole pre-encoded messages; a stream that fell behind writes its queued frames coalesced into
fewer messages of at most `max_batch` updates (`coalesce`).

Slow readers stay bounded per member, counted per update:
- trades: a member's queue holds at most `capacity` updates; beyond, the oldest frames are dropped (`dropped`
  counts their updates, the client sees the matching sequence gaps);
- quotes: a window keeps the latest quote per symbol (the replaced ones count as `conflated`); a member that
  overflows discards its queued frames (counted as `conflated`) and is sent a catch-up batch with the latest
  quote of each of its symbols, then continues with the shared frames.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from services.marketdata.domain.queues import _Signal

T = TypeVar("T")

MAX_BATCH = 1000
DEFAULT_WINDOW_S = 0.005
MAX_WINDOW_S = 1.0

_ids = itertools.count(1)


class Timer(Protocol):
    def cancel(self) -> Any: ...


# Calls a function after a delay in seconds (asyncio's loop.call_later; a fake clock in tests).
Schedule = Callable[[float, Callable[[], None]], Timer]
# Encodes a batch of updates into one stream message (wire bytes).
Encode = Callable[[list[T]], bytes]


def call_later(delay_s: float, fn: Callable[[], None]) -> Timer:
    return asyncio.get_running_loop().call_later(delay_s, fn)


@dataclass(frozen=True, slots=True)
class BatchOptions:
    """What a client asked for: up to `max_batch` updates per message, held at most `window_s`."""

    max_batch: int
    window_s: float

    @staticmethod
    def of(max_batch: int, window_ms: int) -> BatchOptions | None:
        """None when the client did not opt in (max_batch 0 or 1): one update per message."""
        if max_batch <= 1:
            return None
        window_s = DEFAULT_WINDOW_S if window_ms <= 0 else min(window_ms / 1000, MAX_WINDOW_S)
        return BatchOptions(min(max_batch, MAX_BATCH), window_s)


@dataclass(frozen=True, slots=True)
class Frame:
    """One encoded batch message: `count` updates, `conflated` more that the batch replaced."""

    data: bytes
    count: int
    conflated: int = 0


class FrameQueue:
    """One member stream's frames, bounded by the number of updates they hold (or the one newest frame)."""

    def __init__(self, capacity: int, conflate: bool) -> None:
        self.frames: deque[Frame] = deque()
        self.capacity = max(1, capacity)
        self.conflate = conflate
        self.size = 0
        self.conflated = 0
        self.dropped = 0
        # Quotes only: the queued frames were discarded; the next message is the latest quote of each symbol.
        self.catch_up = False
        self.signal = _Signal()

    def put(self, frame: Frame) -> None:
        self.conflated += frame.conflated
        if self.catch_up:
            self.conflated += frame.count  # the coming catch-up batch holds the newer quotes
            return
        self.frames.append(frame)
        self.size += frame.count
        while self.size > self.capacity and len(self.frames) > 1:  # the newest frame is always kept
            if self.conflate:
                self.conflated += self.size
                self.frames.clear()
                self.size = 0
                self.catch_up = True
            else:
                old = self.frames.popleft()
                self.size -= old.count
                self.dropped += old.count
        self.signal.notify()

    def caught_up(self) -> None:
        self.catch_up = False

    def drain(self) -> list[Frame]:
        out = list(self.frames)
        self.frames.clear()
        self.size = 0
        return out

    def __len__(self) -> int:
        return self.size


def coalesce(frames: list[Frame], max_count: int) -> list[list[Frame]]:
    """Consecutive frames grouped into runs of at most `max_count` updates (a frame is never split): a stream
    that fell behind sends what it has queued in fewer, fuller messages."""
    runs: list[list[Frame]] = []
    size = 0
    for frame in frames:
        if runs and size + frame.count <= max_count:
            runs[-1].append(frame)
            size += frame.count
        else:
            runs.append([frame])
            size = frame.count
    return runs


@dataclass(eq=False)
class BatchMember:
    """One batched client stream: the group it shares frames with, and its own bounded queue."""

    group: BatchGroup[Any]
    queue: FrameQueue
    id: int = field(default_factory=lambda: next(_ids))


class BatchGroup(Generic[T]):
    """The batched streams of one kind with the same symbols and options; a sink of the fan-out (`put`)."""

    def __init__(
        self,
        kind: str,
        symbols: frozenset[str],
        options: BatchOptions,
        encode: Encode[T],
        capacity: int,
        conflate_key: Callable[[T], Hashable] | None = None,
        schedule: Schedule = call_later,
    ) -> None:
        self.kind = kind
        self.symbols = symbols
        self.options = options
        self.encode = encode
        self.capacity = capacity
        self.conflate_key = conflate_key
        self.schedule = schedule
        self.members: dict[int, BatchMember] = {}
        self.pending: list[T] = []
        self.latest: OrderedDict[Hashable, T] = OrderedDict()
        self.pending_conflated = 0
        self.timer: Timer | None = None
        self.frames = 0
        self.updates = 0

    def join(self) -> BatchMember:
        member = BatchMember(self, FrameQueue(self.capacity, conflate=self.conflate_key is not None))
        self.members[member.id] = member
        return member

    def leave(self, member: BatchMember) -> bool:
        """Remove a member; True when the group is now empty (and its timer cancelled)."""
        self.members.pop(member.id, None)
        if self.members:
            return False
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.pending.clear()
        self.latest.clear()
        return True

    def put(self, item: T) -> None:
        if self.conflate_key is not None:
            key = self.conflate_key(item)
            if key in self.latest:
                self.pending_conflated += 1
            self.latest[key] = item
            waiting = len(self.latest)
        else:
            self.pending.append(item)
            waiting = len(self.pending)
        if waiting >= self.options.max_batch:
            self.flush()
        elif self.timer is None:
            self.timer = self.schedule(self.options.window_s, self.flush)

    def flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.conflate_key is not None:
            items = list(self.latest.values())
            self.latest.clear()
        else:
            items, self.pending = self.pending, []
        if not items:
            return
        conflated, self.pending_conflated = self.pending_conflated, 0
        step = self.options.max_batch
        for start in range(0, len(items), step):
            chunk = items[start : start + step]
            frame = Frame(self.encode(chunk), len(chunk), conflated if start == 0 else 0)
            self.frames += 1
            self.updates += len(chunk)
            for member in self.members.values():
                member.queue.put(frame)

    def __len__(self) -> int:
        """Updates waiting for the window."""
        return len(self.latest) if self.conflate_key is not None else len(self.pending)
