"""The simulation loop (service layer, no grpc/gen): steps the seeded Simulation at a configured feed-message rate,
turns engine events into feed messages and hands them, in order, to a FeedSink (the NATS publisher in production,
a list in tests). A full book image of every symbol goes out first and then every ``image_interval_s``.

Member orders enter the same engine through ``desk`` (``MemberDesk``, which survives simulation resets). The desk
drains the engine for both (its ``pump``), so the events of a member command wait in its outbox and go out, in
engine order, at the start of the next tick: the feed carries member trades like any other trade.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Protocol

import structlog

from services.prism.domain.engine import MatchingEngine
from services.prism.domain.events import ACCEPTED, REJECTED, TRADE
from services.prism.domain.feed import FeedBuilder, FeedMessage
from services.prism.domain.instruments import Instrument
from services.prism.domain.members import ExecutionLog, MemberDesk
from services.prism.domain.participants import ParticipantKind, Simulation, SimulationConfig

log = structlog.get_logger("prism.runner")


class FeedSink(Protocol):
    """Where feed messages go, in the order given."""

    async def publish(self, messages: Sequence[FeedMessage]) -> None: ...


class RunState(Enum):
    RUNNING = 1
    PAUSED = 2


@dataclass
class Counters:
    messages_published: int = 0
    orders_entered: int = 0
    trades: int = 0


@dataclass
class RunnerStatus:
    state: RunState
    seed: int
    message_rate: int
    enabled: dict[ParticipantKind, bool]
    counts: dict[ParticipantKind, int]
    counters: Counters
    resting_orders: int
    start_time_ns: int


@dataclass(frozen=True)
class ParticipantChange:
    kind: ParticipantKind
    enabled: bool
    count: int | None = None  # None: keep the count


@dataclass
class SimulationRunner:
    """Owns the engine and the simulation; one asyncio task (``run``) drives both."""

    instruments: tuple[Instrument, ...]
    config: SimulationConfig
    sink: FeedSink
    message_rate: int = 100
    image_interval_s: float = 5.0
    tick_s: float = 0.05
    warmup_steps: int = 3000
    max_steps_per_tick: int = 5000
    clock: Callable[[], int] = time.time_ns
    start_sequences: Mapping[str, int] = field(default_factory=dict)
    state: RunState = RunState.RUNNING
    first_exec_sequence: int = 0  # base of exec_sequence and venue order ids (see members.py)
    exec_retention_per_account: int = 100_000
    max_done_orders: int = 200_000

    def __post_init__(self) -> None:
        self.counters = Counters()
        self.start_time_ns = self.clock()
        self.enabled: dict[ParticipantKind, bool] = dict.fromkeys(ParticipantKind, True)
        self._pending_images = True
        self._last_image_ns = 0
        self._budget = 0.0
        self._lock = asyncio.Lock()
        self.builder: FeedBuilder | None = None
        self.exec_log = ExecutionLog(self.exec_retention_per_account, self.first_exec_sequence)
        self.desk = MemberDesk(
            MatchingEngine(self.instruments),
            self.exec_log,
            first_sequence=self.first_exec_sequence,
            max_done_orders=self.max_done_orders,
        )
        self._reset(dict(self.start_sequences))

    # --- engine lifecycle ---------------------------------------------------------------------------------------------

    def _reset(self, sequences: Mapping[str, int]) -> None:
        """A fresh engine and simulation for the current config, warmed up so the books have depth; the feed
        numbering continues from ``sequences`` and the next publish starts with book images."""
        now = self.clock()
        self.engine = MatchingEngine(self.instruments, now_ns=now)
        self.desk.attach(self.engine, now)  # member orders in the old books (if any) are canceled
        self.simulation = Simulation(self.engine, self.config)
        self.simulation.enabled.update(self.enabled)
        self.builder = FeedBuilder(self.engine, sequences)
        self.simulation.run(self.warmup_steps)
        self._count(self.engine.drain())  # warm-up flow is not published: the first image carries its result
        self._pending_images = True

    def _count(self, events: Iterable[tuple[object, ...]]) -> None:
        c = self.counters
        for ev in events:
            kind = ev[0]
            if kind == TRADE:
                c.trades += 1
            elif kind in (ACCEPTED, REJECTED):
                c.orders_entered += 1

    # --- producing ----------------------------------------------------------------------------------------------------

    def images(self, now_ns: int) -> list[FeedMessage]:
        assert self.builder is not None
        self._last_image_ns = now_ns
        self._pending_images = False
        return [self.builder.image(s, now_ns) for s in self.engine.symbols]

    def produce(self, budget: float, now_ns: int) -> list[FeedMessage]:
        """Step the simulation until about ``budget`` feed messages were produced (or the step cap is reached)."""
        assert self.builder is not None
        desk = self.desk
        out = self._feed(desk.take_outbox(), now_ns)  # member commands since the last tick
        if self._pending_images or now_ns - self._last_image_ns >= self.image_interval_s * 1e9:
            out += self.images(now_ns)
        self.engine.advance(now_ns)  # GTD expiries, also while paused
        desk.pump(now_ns)
        out += self._feed(desk.take_outbox(), now_ns)
        if self.state is RunState.PAUSED:
            return out
        steps = 0
        while len(out) < budget and steps < self.max_steps_per_tick:
            self.simulation.step()
            steps += 1
            desk.pump(now_ns)
            out += self._feed(desk.take_outbox(), now_ns)
        return out

    def _feed(self, events: list[tuple[object, ...]], now_ns: int) -> list[FeedMessage]:
        if not events:
            return []
        assert self.builder is not None
        self._count(events)
        return self.builder.from_events(events, now_ns)

    async def tick(self, elapsed_s: float) -> int:
        """One loop iteration: produce what ``elapsed_s`` of the configured rate allows and publish it."""
        async with self._lock:
            rate = self.message_rate
            self._budget = min(self._budget + rate * elapsed_s, max(rate, 1))
            messages = self.produce(self._budget, self.clock())
            self._budget -= len(messages)
        if messages:
            await self.sink.publish(messages)
            self.counters.messages_published += len(messages)
        return len(messages)

    async def run(self) -> None:
        """Run until canceled."""
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            now = loop.time()
            try:
                await self.tick(now - last)
            except asyncio.CancelledError:
                raise
            except Exception:  # a failed tick must not end the feed; the next image resynchronizes consumers
                log.exception("prism.tick_failed")
                self._pending_images = True
            last = now
            await asyncio.sleep(max(0.0, self.tick_s - (loop.time() - now)))

    # --- control ------------------------------------------------------------------------------------------------------

    async def configure(
        self,
        seed: int | None = None,
        message_rate: int | None = None,
        participants: Sequence[ParticipantChange] = (),
        state: RunState | None = None,
    ) -> None:
        """Change the running simulation. A new seed or participant count restarts the engine (fresh books, a new
        image); enabling/disabling a kind, the rate and the state apply at once."""
        async with self._lock:
            if message_rate is not None:
                self.message_rate = message_rate
            if state is not None:
                self.state = state
            rebuild = False
            counts = dict(self.config.counts)
            for change in participants:
                self.enabled[change.kind] = change.enabled
                if change.count is not None and change.count != counts.get(change.kind, 0):
                    counts[change.kind] = change.count
                    rebuild = True
            self.simulation.enabled.update(self.enabled)
            if seed is not None and seed != self.config.seed:
                rebuild = True
            if rebuild:
                self.config = replace(self.config, seed=self.config.seed if seed is None else seed, counts=counts)
                assert self.builder is not None
                self._reset(dict(self.builder.sequences))
                log.info("prism.reconfigured", seed=self.config.seed, counts={k.name: v for k, v in counts.items()})

    def status(self) -> RunnerStatus:
        return RunnerStatus(
            state=self.state,
            seed=self.config.seed,
            message_rate=self.message_rate,
            enabled=dict(self.enabled),
            counts={k: self.config.counts.get(k, 0) for k in ParticipantKind},
            counters=self.counters,
            resting_orders=sum(self.engine.book(s).resting_orders() for s in self.engine.symbols),
            start_time_ns=self.start_time_ns,
        )
