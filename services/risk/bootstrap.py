"""Composition root of risk: in-memory state fed from NATS, limits/kill switches rebuilt from the RISK stream,
compliance from OPA, the RiskService behind the gRPC servicer."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import structlog
from nats.js.errors import NotFoundError
from trade.risk.v1 import risk_pb2, risk_pb2_grpc

from services.risk.adapters.limits_file import LimitsConfig, load_limits
from services.risk.adapters.nats_events import JetStreamRiskEvents, RiskStreamFollower, replay_risk_stream
from services.risk.adapters.nats_state import NatsStateFeeds, default_feeds
from services.risk.adapters.opa_compliance import OpaCompliance
from services.risk.adapters.snapshot import BUCKET as SNAPSHOT_BUCKET
from services.risk.adapters.snapshot import ExposureSnapshots
from services.risk.domain.ids import UlidSource
from services.risk.domain.killswitch import KillSwitchBook
from services.risk.domain.limits import LimitsBook
from services.risk.domain.ports import CompliancePolicy
from services.risk.domain.service import RiskService
from services.risk.domain.state import ExposureBook, MidBook, PnlBook
from services.risk.servicer import RiskServicer
from services.risk.settings import RiskSettings
from services.runtime.bus import Bus, StreamSpec
from services.runtime.server import Registration
from services.runtime.snapshots import SnapshotStore
from services.runtime.streams import FILLS, ORDERS, PNL, RISK

log = structlog.get_logger("risk")

SERVICE_NAME = risk_pb2.DESCRIPTOR.services_by_name["RiskService"].full_name


class SystemClock:
    def now_ns(self) -> int:
        return time.time_ns()


async def ensure_stream_exists(bus: Bus, spec: StreamSpec) -> None:
    """Create a stream another service owns if it is missing; never reconfigure it."""
    try:
        await bus.js.stream_info(spec.name)
    except NotFoundError:
        with contextlib.suppress(Exception):  # lost a creation race with its owner
            await bus.js.add_stream(spec.config())


# The feeds whose state a snapshot holds (PNL replays only its last message per account anyway).
SNAPSHOT_FEEDS = ("fills", "orders")


@dataclass
class Risk:
    """The running pieces of one risk instance (the service, or an in-process instance in tests)."""

    settings: RiskSettings
    bus: Bus
    service: RiskService
    mids: MidBook
    exposure: ExposureBook
    pnl: PnlBook
    opa: OpaCompliance
    feeds: NatsStateFeeds
    follower: RiskStreamFollower
    snapshots: ExposureSnapshots | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self, *, connect: bool = True) -> None:
        if connect:
            await self.bus.connect()
        await self.bus.ensure_streams([RISK])
        for spec in (FILLS, ORDERS, PNL):
            await ensure_stream_exists(self.bus, spec)
        try:
            await self.opa.load()
        except Exception as exc:  # checks fail closed until keep_loaded gets it in
            log.warning("risk.opa_load_failed", error=repr(exc))
        last_seq = await replay_risk_stream(
            self.bus, self.service.limits, self.service.kill_switches, timeout_s=self.settings.replay_timeout_s
        )
        await self.follower.start(last_seq)
        await self.feeds.warm_mids(self.settings.md_stream, [i.symbol for i in self.service.limits.instruments()])
        start_after = await self.snapshots.restore(self.exposure) if self.snapshots is not None else {}
        await self.feeds.start(self.settings.warmup_timeout_s, start_after=start_after)
        replayed = sum(n for kind, n in self.feeds.applied().items() if kind in SNAPSHOT_FEEDS)
        if self.feeds.caught_up() and replayed >= self.settings.snapshot_after_replayed:
            await self._snapshot()
        self.tasks.append(asyncio.create_task(self.opa.keep_loaded(self.settings.opa_reload_interval_s)))

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()
        if self.feeds.caught_up():
            await self._snapshot()
        await self.feeds.stop()
        await self.follower.stop()
        await self.opa.close()
        await self.bus.close()

    async def _snapshot(self) -> None:
        if self.snapshots is not None and self.exposure.tracked_orders() >= self.settings.snapshot_min_orders:
            # The positions first: the feeds may apply more before the book is encoded, and replaying those
            # messages again after a restart changes nothing (fills count once by id, orders by version).
            sequences = self.feeds.sequences()
            await self.snapshots.save(self.exposure, {kind: sequences[kind] for kind in SNAPSHOT_FEEDS})


def compose(
    settings: RiskSettings,
    *,
    bus: Bus | None = None,
    config: LimitsConfig | None = None,
    compliance: CompliancePolicy | None = None,
) -> Risk:
    config = config or load_limits(settings.limits_file)
    bus = bus or Bus(settings.nats_url, settings.service_name)
    clock = SystemClock()
    mids = MidBook(int(settings.mid_max_age_s * 1e9))
    exposure = ExposureBook()
    pnl = PnlBook()
    opa = OpaCompliance(
        settings.opa_url, config.compliance, settings.compliance_timeout_s, settings.compliance_cache_ttl_s
    )
    limits = LimitsBook(config.account_defaults, config.instruments)
    kill_switches = KillSwitchBook()
    follower = RiskStreamFollower(bus, limits, kill_switches)
    service = RiskService(
        limits=limits,
        kill_switches=kill_switches,
        mids=mids,
        exposure=exposure,
        pnl=pnl,
        compliance=compliance or opa,
        events=JetStreamRiskEvents(bus, follower=follower),
        clock=clock,
        ids=UlidSource(),
    )
    feeds = NatsStateFeeds(
        bus,
        default_feeds(exposure, pnl, settings.fills_subject, settings.orders_subject, settings.pnl_subject),
        mids,
        settings.quote_subject,
        settings.durable_prefix,
        clock.now_ns,
    )
    snapshots = None
    if settings.snapshots:
        snapshotted = [("fills", FILLS.name, settings.fills_subject), ("orders", ORDERS.name, settings.orders_subject)]
        snapshots = ExposureSnapshots(bus, SnapshotStore(bus, SNAPSHOT_BUCKET), snapshotted)
    return Risk(settings, bus, service, mids, exposure, pnl, opa, feeds, follower, snapshots)


async def build(settings: RiskSettings) -> Registration:
    risk = compose(settings)
    return Registration(
        add_to_server=lambda server: risk_pb2_grpc.add_RiskServiceServicer_to_server(
            RiskServicer(risk.service), server
        ),
        service_names=[SERVICE_NAME],
        on_start=[risk.start],
        on_stop=[risk.stop],
    )
