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
