"""Snapshots of a service's memory in the JetStream object store: a restart loads the last one and replays its
streams only beyond the positions it records, instead of from the start. The streams stay the source of truth:
a service uses a snapshot only if it matches them (same stream incarnation, a position within the stream).

A snapshot is a sequence of protobuf messages, each preceded by its length (4 bytes, big-endian), so that a
reader holds one chunk's protobuf objects at a time.
"""

from __future__ import annotations

import asyncio
import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeVar

from google.protobuf.message import Message
from nats.js import api
from nats.js.errors import BucketNotFoundError, ObjectNotFoundError
from nats.js.object_store import ObjectStore

from services.runtime.bus import Bus

_LENGTH = struct.Struct(">I")
M = TypeVar("M", bound=Message)


def frame(message: Message) -> bytes:
    data = message.SerializeToString()
    return _LENGTH.pack(len(data)) + data


def frames(data: bytes) -> Iterator[memoryview]:
    """The framed messages' bytes, in order; ValueError if the data ends inside a frame."""
    view, at = memoryview(data), 0
    while at < len(data):
        if at + _LENGTH.size > len(data):
            raise ValueError("snapshot truncated")
        (size,) = _LENGTH.unpack_from(view, at)
        at += _LENGTH.size
        if at + size > len(data):
            raise ValueError("snapshot truncated")
        yield view[at : at + size]
        at += size


def parse(data: bytes, message: type[M], fmt: int) -> tuple[M, Iterator[M]]:
    """The first message, whose `format` field must be `fmt`, and the others as they are parsed; ValueError for
    another format or truncated data (DecodeError for a malformed message)."""
    messages = (message.FromString(f) for f in frames(data))  # type: ignore[arg-type]  # any buffer will do
    header = next(messages, None)
    found = getattr(header, "format", None)
    if found != fmt:
        raise ValueError(f"snapshot format {found}, this code reads {fmt}")
    assert header is not None
    return header, messages


async def stream_identity(bus: Bus, stream: str) -> tuple[int, int]:
    """(creation time in ns, last sequence) of a stream: a stream deleted and created again has another creation
    time, and a snapshot position beyond the last sequence belongs to another history."""
    info = await bus.js.stream_info(stream)
    created = info.created
    return (int(created.timestamp() * 1e9) if created is not None else 0), info.state.last_seq


@dataclass(frozen=True, slots=True)
class StreamPosition:
    """How far a snapshot reflects one stream, read through one subject filter."""

    stream: str
    stream_created_ns: int
    subject_filter: str
    sequence: int

    @classmethod
    async def current(cls, bus: Bus, stream: str, subject_filter: str, sequence: int) -> StreamPosition:
        created_ns, _ = await stream_identity(bus, stream)
        return cls(stream, created_ns, subject_filter, sequence)

    async def usable(self, bus: Bus, stream: str, subject_filter: str) -> bool:
        """Whether the position belongs to the stream as it is now: the same incarnation and filter, and a
        sequence within the stream."""
        created_ns, last_seq = await stream_identity(bus, stream)
        same = (self.stream, self.subject_filter, self.stream_created_ns) == (stream, subject_filter, created_ns)
        return same and self.sequence <= last_seq


class SnapshotStore:
    """An object store bucket (file storage) of snapshots, one object per name."""

    def __init__(self, bus: Bus, bucket: str, timeout_s: float = 60.0) -> None:
        self.bus = bus
        self.bucket = bucket
        self.timeout_s = timeout_s

    async def _bucket(self) -> ObjectStore:
        try:
            return await self.bus.js.object_store(self.bucket)
        except BucketNotFoundError:
            config = api.ObjectStoreConfig(storage=api.StorageType.FILE, description="service memory snapshots")
            return await self.bus.js.create_object_store(self.bucket, config=config)

    async def save(self, name: str, data: bytes) -> None:
        async with asyncio.timeout(self.timeout_s):
            await (await self._bucket()).put(name, data)

    async def load(self, name: str) -> bytes | None:
        async with asyncio.timeout(self.timeout_s):
            try:
                store = await self.bus.js.object_store(self.bucket)
                into = io.BytesIO()  # the client's default concatenates chunk by chunk (quadratic)
                await store.get(name, writeinto=into)
            except (BucketNotFoundError, ObjectNotFoundError):
                return None
            return into.getvalue()
