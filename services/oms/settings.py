"""OMS settings (env prefix TRADE_: TRADE_RISK_TARGET, TRADE_EXEC_DURABLE, ...)."""

from __future__ import annotations

from pydantic import Field

from mesh.ports import load_ports
from services.runtime.settings import ServiceSettings


class OmsSettings(ServiceSettings):
    service_name: str = "oms"
    port: int = Field(default_factory=lambda: load_ports().service("oms"))
    risk_target: str = Field(default_factory=lambda: f"127.0.0.1:{load_ports().service('risk')}")
    risk_deadline_s: float = 0.3
    # Deployment default venue (wire name without VENUE_) for orders that leave it unspecified.
    default_venue: str = "PRISM"
    # The journal: every order event, replayed at start (a narrower filter is for tests).
    orders_filter: str = "orders.>"
    publish_timeout_s: float = 2.0
    # None: the start-up replay takes however long the journal needs (it grows with history: 375k events took
    # 22 s alone, 41 s while the whole mesh started); a number makes start-up fail past it, and a supervisor
    # would restart into the same replay.
    replay_timeout_s: float | None = None
    # Snapshots of memory (object store OMS_SNAPSHOTS): a start reads the journal only beyond the last one. One is
    # written when the OMS stops and after a start-up replay of at least snapshot_after_replayed events, when memory
    # holds at least snapshot_min_orders orders (a small journal replays in well under a second).
    snapshots: bool = True
    snapshot_after_replayed: int = 50_000
    snapshot_min_orders: int = 10_000
    # Memory re-reads the journal beyond its cursor this often (a safety net behind the live follower).
    journal_sync_interval_s: float = 5.0
    # Venue execution reports.
    exec_durable: str = "oms-exec"
    exec_filter: str = "exec.>"
    # Short, so that reports in flight at a crash come back quickly (handlers are idempotent).
    exec_ack_wait_s: float = 5.0
    # Kill-switch events (only events after the consumer was first created are acted on).
    killswitch_durable: str = "oms-killswitch"
    killswitch_filter: str = "risk.killswitch.>"
    # Server streams: idle heartbeat and how many undelivered messages a slow client may accumulate.
    stream_heartbeat_s: float = 5.0
    stream_queue_limit: int = 10_000
