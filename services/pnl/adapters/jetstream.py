"""Reading a JetStream stream from the start: an ephemeral ordered consumer (it detects gaps and re-creates
itself, so nothing in the range is skipped), stopped at a given stream sequence."""

from __future__ import annotations

import contextlib

from nats.js import api
from nats.js.errors import NotFoundError

from services.runtime.bus import Bus


async def last_sequence(bus: Bus, stream: str) -> int:
    try:
        info = await bus.js.stream_info(stream)
    except NotFoundError:
        return 0
    return int(info.state.last_seq or 0)


async def replay(
    bus: Bus, stream: str, filter_subject: str, up_to_sequence: int, timeout_s: float = 5.0
) -> list[tuple[int, bytes]]:
    """(stream sequence, payload) of every message matching the filter up to up_to_sequence, in order."""
    out: list[tuple[int, bytes]] = []
    if up_to_sequence <= 0:
        return out
    sub = await bus.js.subscribe(
        filter_subject,
        stream=stream,
        ordered_consumer=True,
        config=api.ConsumerConfig(deliver_policy=api.DeliverPolicy.ALL, mem_storage=True),
        pending_msgs_limit=-1,
        pending_bytes_limit=-1,
    )
    try:
        info = await sub.consumer_info()
        # Messages are either still pending or already pushed to us: neither means nothing matches.
        if not info.num_pending and not (info.delivered and info.delivered.consumer_seq):
            return out
        while True:
            msg = await sub.next_msg(timeout=timeout_s)
            meta = msg.metadata
            if meta.sequence.stream > up_to_sequence:
                break
            out.append((meta.sequence.stream, msg.data))
            if meta.sequence.stream >= up_to_sequence or not meta.num_pending:
                break
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    return out
