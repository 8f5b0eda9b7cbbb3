"""Composition root of the OMS: JetStream ORDERS (journal, replayed at start) + EXEC and RISK consumers + the
risk.CheckOrder client + the OmsService servicer."""

from __future__ import annotations

import time
from dataclasses import dataclass

from trade.oms.v1 import oms_pb2, oms_pb2_grpc

from services.oms.adapters.consumers import OmsConsumers, killswitch_deliver_policy
from services.oms.adapters.journal import JetStreamJournal, JournalFollower
from services.oms.adapters.risk_client import GrpcRiskCheck
from services.oms.adapters.snapshot import BUCKET, JournalSnapshots
from services.oms.domain.ports import RiskCheck
from services.oms.domain.service import Oms
from services.oms.servicer import OmsServicer
from services.oms.settings import OmsSettings
from services.runtime.batches import BatchConsumerSpec
from services.runtime.bus import Bus
from services.runtime.server import Registration
from services.runtime.snapshots import SnapshotStore
from services.runtime.streams import EXEC, FILLS, ORDERS, RISK

SERVICE_NAME = oms_pb2.DESCRIPTOR.services_by_name["OmsService"].full_name


class SystemClock:
    def now_ns(self) -> int:
        return time.time_ns()


@dataclass
class OmsApp:
    """The running pieces of one OMS (the service, or an in-process instance in tests)."""

    settings: OmsSettings
    bus: Bus
    oms: Oms
    follower: JournalFollower
    consumers: OmsConsumers
    servicer: OmsServicer
    risk: RiskCheck
    snapshots: JournalSnapshots | None

    async def start(self, *, connect: bool = True) -> None:
        """Rebuild every order (the last snapshot, then ORDERS beyond it) before anything is served, then resume
        the EXEC and RISK consumers."""
        if connect:
            await self.bus.connect()
        await self.bus.ensure_streams([ORDERS, FILLS, EXEC, RISK])
        if self.snapshots is not None:
            self.follower.cursor = await self.snapshots.restore(self.oms.book)
        await self.follower.start(self.settings.replay_timeout_s)
        if self.follower.replayed >= self.settings.snapshot_after_replayed:
            await self._snapshot()
        self.oms.mark_ready()
        self.consumers.start()

    async def _snapshot(self) -> None:
        if self.snapshots is not None and len(self.oms.book) >= self.settings.snapshot_min_orders:
            # Memory may hold versions beyond the cursor (its own appends): replaying them again changes nothing.
            await self.snapshots.save(self.oms.book, self.follower.cursor)

    async def stop(self) -> None:
        self.oms.ready = False
        await self.consumers.stop()
        await self.follower.stop()
        await self._snapshot()
        if isinstance(self.risk, GrpcRiskCheck):
            await self.risk.close()
        await self.bus.close()


def compose(settings: OmsSettings, risk: RiskCheck | None = None, bus: Bus | None = None) -> OmsApp:
    bus = bus or Bus(settings.nats_url, settings.service_name)
    risk = risk or GrpcRiskCheck(settings.risk_target, settings.risk_deadline_s)
    journal = JetStreamJournal(bus, ORDERS.name, settings.publish_timeout_s)
    oms = Oms(journal, risk, SystemClock(), settings.default_venue, settings.stream_queue_limit)
    follower = JournalFollower(
        bus, ORDERS.name, settings.orders_filter, oms.restore, settings.journal_sync_interval_s, oms.holds
    )
    oms.catch_up = follower.sync
    exec_spec = BatchConsumerSpec(
        stream=EXEC.name,
        durable=settings.exec_durable,
        filter_subject=settings.exec_filter,
        batch=256,
        ack_wait_s=settings.exec_ack_wait_s,
    )
    killswitch_spec = BatchConsumerSpec(
        stream=RISK.name,
        durable=settings.killswitch_durable,
        filter_subject=settings.killswitch_filter,
        batch=64,
        ack_wait_s=settings.exec_ack_wait_s,
        deliver_policy=killswitch_deliver_policy(),
    )
    consumers = OmsConsumers(bus, oms, exec_spec, killswitch_spec)
    servicer = OmsServicer(oms, settings.stream_heartbeat_s)
    snapshots = (
        JournalSnapshots(bus, SnapshotStore(bus, BUCKET), ORDERS.name, settings.orders_filter)
        if settings.snapshots
        else None
    )
    return OmsApp(settings, bus, oms, follower, consumers, servicer, risk, snapshots)


async def build(settings: OmsSettings) -> Registration:
    app = compose(settings)
    return Registration(
        add_to_server=lambda server: oms_pb2_grpc.add_OmsServiceServicer_to_server(app.servicer, server),
        service_names=[SERVICE_NAME],
        on_start=[app.start],
        on_stop=[app.stop],
    )
