"""questdb-writer settings (env prefix TRADE_: TRADE_FILLS_TABLE, TRADE_DURABLE_PREFIX, ...)."""

from __future__ import annotations

from pydantic import Field

from mesh.ports import load_ports
from services.runtime.settings import ServiceSettings, infra_url
from services.runtime.streams import FILLS, ORDERS, PNL


class QuestdbWriterSettings(ServiceSettings):
    service_name: str = "questdb_writer"
    port: int = Field(default_factory=lambda: load_ports().service("questdb_writer"))
    questdb_http_url: str = Field(default_factory=lambda: infra_url("http", "questdb_http"))
    fills_table: str = "fills"
    order_events_table: str = "order_events"
    pnl_snapshots_table: str = "pnl_snapshots"
    # Source streams and subjects (tests read streams of their own).
    fills_stream: str = FILLS.name
    orders_stream: str = ORDERS.name
    pnl_stream: str = PNL.name
    fills_subject: str = "fills.>"
    orders_subject: str = "orders.>"
    pnl_subject: str = "pnl.>"
    durable_prefix: str = "questdb-writer"
    # Messages per JetStream fetch = rows per ILP flush (at most; a PnL snapshot is several rows).
    batch_size: int = 1000
    # Collect for up to this long after the first message (fewer, larger QuestDB commits). Each commit is a WAL
    # transaction with a dedup merge: QuestDB took ~47 % of a core at 0.2 s and ~31 % at 1.0 s beside the mesh's
    # live PnL snapshots and ticks (03:20 UTC, busy box). Rows land in QuestDB up to this much later.
    linger_s: float = 1.0
    ack_wait_s: float = 30.0
    # Keys of recently written rows remembered per table (redeliveries skipped without a write).
    remember_keys: int = 100_000
    ilp_retry_timeout_ms: int = 1000
    ilp_request_timeout_ms: int = 10_000

    def ilp_conf(self) -> str:
        addr = self.questdb_http_url.split("://", 1)[-1].rstrip("/")
        return (
            f"http::addr={addr};retry_timeout={self.ilp_retry_timeout_ms};"
            f"request_timeout={self.ilp_request_timeout_ms};auto_flush=off;"
        )
