"""RISK stream: publishing kill-switch events and limit audits, replaying them into a fresh instance, and
following the stream afterwards so changes made by another instance apply here too, in stream order."""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext, api
from trade.risk.v1 import events_pb2

from services.risk.adapters.codec import audit_from_pb, audit_pb, kill_event_from_pb, kill_event_pb
from services.risk.domain.killswitch import KillSwitchBook
from services.risk.domain.limits import LimitsBook
from services.risk.domain.model import KillSwitchEvent, LimitChange
from services.runtime.bus import Bus
from services.runtime.errors import DomainError, ErrorKind

log = structlog.get_logger("risk.events")

KILL_SWITCH_PREFIX = "risk.killswitch."
LIMITS_AUDIT_SUBJECT = "risk.limits.audit"


class RiskStreamFollower:
    """Applies RISK records after the replay, in stream order (an ordered push consumer)."""

    def __init__(self, bus: Bus, limits: LimitsBook, kill_switches: KillSwitchBook, stream: str = "RISK") -> None:
        self._bus = bus
        self._limits = limits
        self._kill_switches = kill_switches
        self._stream = stream
        self.applied_seq = 0
        self._progress = asyncio.Condition()
        self._sub: JetStreamContext.PushSubscription | None = None

    async def start(self, after_seq: int) -> None:
        self.applied_seq = after_seq
        config = api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after_seq + 1, mem_storage=True
        )
        self._sub = await self._bus.js.subscribe(
            "risk.>", stream=self._stream, cb=self._on_msg, ordered_consumer=True, config=config
        )

    async def _on_msg(self, msg: Msg) -> None:
        try:
            apply_risk_message(msg.subject, msg.data, self._limits, self._kill_switches)
        except Exception as exc:
            log.warning("risk.bad_record", subject=msg.subject, error=repr(exc))
        async with self._progress:
            self.applied_seq = max(self.applied_seq, msg.metadata.sequence.stream)
            self._progress.notify_all()

    async def wait_applied(self, seq: int, timeout_s: float) -> bool:
        """Wait until the record at `seq` was applied; False on timeout (the caller then applies it itself)."""
        async with self._progress:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait_for(lambda: self.applied_seq >= seq), timeout_s)
            return self.applied_seq >= seq

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None


class JetStreamRiskEvents:
    """Publishes with Nats-Msg-Id = the event's id; a failed publish is UNAVAILABLE and changes nothing.

    With a follower, a publish returns once the follower applied the record, so this instance applies its own
    changes in the same stream order as everyone else's (the domain's own apply is then a no-op).
    """

    def __init__(
        self, bus: Bus, stream: str = "RISK", follower: RiskStreamFollower | None = None, follow_wait_s: float = 2.0
    ) -> None:
        self._bus = bus
        self._stream = stream
        self.follower = follower
        self._follow_wait_s = follow_wait_s

    async def _publish(self, subject: str, payload: bytes, msg_id: str) -> None:
        try:
            ack = await self._bus.publish(subject, payload, msg_id=msg_id)
        except Exception as exc:
            raise DomainError(
                "DEPENDENCY_UNAVAILABLE",
                f"could not record the change on {self._stream}: {exc!r}",
                ErrorKind.UNAVAILABLE,
            ) from exc
        if self.follower is not None and not await self.follower.wait_applied(ack.seq, self._follow_wait_s):
            log.warning("risk.follower_behind", seq=ack.seq, applied_seq=self.follower.applied_seq)

    async def kill_switch(self, event: KillSwitchEvent) -> None:
        await self._publish(
            KILL_SWITCH_PREFIX + event.subject_suffix, kill_event_pb(event).SerializeToString(), event.event_id
        )

    async def limit_change(self, change: LimitChange) -> None:
        await self._publish(LIMITS_AUDIT_SUBJECT, audit_pb(change).SerializeToString(), change.audit_id)


def apply_risk_message(subject: str, data: bytes, limits: LimitsBook, kill_switches: KillSwitchBook) -> bool:
    if subject.startswith(KILL_SWITCH_PREFIX):
        event = kill_event_from_pb(events_pb2.KillSwitchEvent.FromString(data))
        return event is not None and kill_switches.apply(event)
    if subject == LIMITS_AUDIT_SUBJECT:
        return limits.apply(audit_from_pb(events_pb2.LimitChangeAudit.FromString(data)))
    return False


async def replay_risk_stream(
    bus: Bus, limits: LimitsBook, kill_switches: KillSwitchBook, stream: str = "RISK", timeout_s: float = 20.0
) -> int:
    """Apply every kill-switch event and limit audit in stream order (ephemeral consumer, no acks); returns the
    last stream sequence it read (where a follower continues)."""
    info = await bus.js.stream_info(stream)
    last_seq = info.state.last_seq
    if info.state.messages == 0:
        return last_seq
    sub = await bus.js.pull_subscribe(
        "risk.>",
        stream=stream,
        config=api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.ALL,
            ack_policy=api.AckPolicy.NONE,
            inactive_threshold=30.0,
            mem_storage=True,
        ),
    )
    applied, seen_seq = 0, 0
    deadline = time.monotonic() + timeout_s
    try:
        while seen_seq < last_seq and time.monotonic() < deadline:
            try:
                msgs = await sub.fetch(1000, timeout=1.0)
            except NatsTimeoutError:
                break  # the tail was deleted: nothing more to read
            for msg in msgs:
                seen_seq = msg.metadata.sequence.stream
                applied += apply_risk_message(msg.subject, msg.data, limits, kill_switches)
    finally:
        await sub.unsubscribe()
    log.info("risk.replayed", stream=stream, applied=applied, last_seq=last_seq)
    return seen_seq
