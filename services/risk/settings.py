"""risk settings (env prefix TRADE_: TRADE_LIMITS_FILE, TRADE_COMPLIANCE_TIMEOUT_S, ...)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from mesh.ports import load_ports
from services.runtime.settings import ServiceSettings

HERE = Path(__file__).resolve().parent


class RiskSettings(ServiceSettings):
    service_name: str = "risk"
    port: int = Field(default_factory=lambda: load_ports().service("risk"))
    # Default account/instrument limits and compliance data; runtime changes are replayed over them.
    limits_file: Path = HERE / "limits.toml"
    # A mid older than this is unknown (RISK_NO_REFERENCE_PRICE where a check needs it); 0 = never stale.
    mid_max_age_s: float = 300.0
    # OPA answer deadline inside CheckOrder (the OMS gives CheckOrder ~300 ms); past it the order is refused.
    compliance_timeout_s: float = 0.15
    # Reuse a compliance decision for the same account/symbol/side/strategy this long (0 = ask every time): a new
    # restriction or a trading-window edge takes effect at most this late; saves an OPA round trip per order.
    compliance_cache_ttl_s: float = 1.0
    opa_reload_interval_s: float = 2.0
    # Start-up: serve only once the FILLS/ORDERS/PNL replay caught up (None: however long it takes; a number bounds
    # the wait, after which checks would see a partial state: tests only). The ORDERS replay grows with history:
    # 375k events took 13 s alone, 22 s while the whole mesh started (2026-11-26).
    warmup_timeout_s: float | None = None
    # Snapshots of positions and tracked orders (object store RISK_SNAPSHOTS): a start reads FILLS and ORDERS only
    # beyond the last one. One is written when risk stops and after a start-up replay of at least
    # snapshot_after_replayed messages, when it tracks at least snapshot_min_orders orders.
    snapshots: bool = True
    snapshot_after_replayed: int = 50_000
    snapshot_min_orders: int = 10_000
    replay_timeout_s: float = 20.0
    quote_subject: str = "md.quote.>"
    fills_subject: str = "fills.>"
    orders_subject: str = "orders.>"
    pnl_subject: str = "pnl.>"
    md_stream: str = "MD"
    durable_prefix: str = "risk"
