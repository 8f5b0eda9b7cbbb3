"""prism settings (env prefix TRADE_, e.g. TRADE_MESSAGE_RATE=500, TRADE_SEED=7)."""

from __future__ import annotations

from pydantic import Field

from mesh.ports import load_ports
from services.runtime.settings import ServiceSettings


class PrismSettings(ServiceSettings):
    service_name: str = "prism"
    port: int = Field(default_factory=lambda: load_ports().service("prism"))
    # Symbols simulated (from the engine's instrument table: BTCUSDT, ETHUSDT, SOLUSDT).
    symbols: list[str] = Field(default_factory=lambda: ["BTCUSDT", "ETHUSDT", "SOLUSDT"])
    seed: int = 1
    # Feed messages per second, all symbols together (modest by default: the local box is small).
    message_rate: int = 100
    # A full book image of every symbol at start and this often (consumers sync from it).
    image_interval_s: float = 5.0
    # Publishes waiting for their JetStream ack at once.
    max_in_flight: int = 256
    publish_ack_timeout_s: float = 5.0
    # Simulation steps before the first image (so the books start with depth).
    warmup_steps: int = 3000
    # Feed off: the engine still runs (RPCs work) but nothing is published.
    feed_enabled: bool = True
    # Member order entry: delay before an order (or a cancel/amend) reaches the book, like a network hop to a venue.
    order_latency_ms: float = Field(default=0.0, ge=0, le=10_000)
    # Executions retained per account for StreamExecutions replays (after_exec_sequence).
    exec_retention_per_account: int = Field(default=100_000, ge=1)
    # Done member orders remembered for idempotent retries and cancel/amend answers (oldest forgotten first).
    max_done_orders: int = Field(default=200_000, ge=1)
    # Executions a StreamExecutions subscriber may fall behind before it is cut off (SLOW_CONSUMER).
    exec_queue_size: int = Field(default=10_000, ge=1)
    # Heartbeat on an idle StreamExecutions stream this often.
    heartbeat_interval_s: float = Field(default=5.0, gt=0)
