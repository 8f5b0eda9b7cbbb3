"""marketdata settings (env prefix TRADE_, e.g. TRADE_HEARTBEAT_INTERVAL_S=0.5)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from mesh.ports import load_ports
from services.runtime.settings import ServiceSettings, infra_url


class InstrumentConfig(BaseModel):
    symbol: str
    base: str
    quote: str
    tick_size: str
    lot_size: str
    min_notional: str
    venue: str = "prism"


DEFAULT_INSTRUMENTS = [
    InstrumentConfig(
        symbol="BTCUSDT", base="BTC", quote="USDT", tick_size="0.01", lot_size="0.00001", min_notional="5"
    ),
    InstrumentConfig(symbol="ETHUSDT", base="ETH", quote="USDT", tick_size="0.01", lot_size="0.0001", min_notional="5"),
    InstrumentConfig(symbol="SOLUSDT", base="SOL", quote="USDT", tick_size="0.01", lot_size="0.001", min_notional="5"),
]


class MarketDataSettings(ServiceSettings):
    service_name: str = "marketdata"
    port: int = Field(default_factory=lambda: load_ports().service("marketdata"))
    questdb_url: str = Field(default_factory=lambda: infra_url("http", "questdb_http"))
    bars_table: str = "ohlcv_1m"
    # Every stream sends a StreamHeartbeat (with its conflated/dropped counters) this often.
    heartbeat_interval_s: float = 1.0
    # Per-subscriber queue bounds: quotes (distinct symbols), trades (messages), book deltas (messages).
    quote_queue_symbols: int = 1024
    trade_queue_size: int = 1024
    book_queue_size: int = 1024
    # Batched streams: the bound of a stream's queue of shared batches, in updates. A queued update costs a
    # share of a batch encoded once for all streams (not a message per stream), so it can absorb longer bursts.
    batched_queue_updates: int = 4096
    default_depth: int = 20
    # How far back the book subscription replays MD at start (snapshots come at least every 30 s).
    book_replay_s: float = 35.0
    instruments: list[InstrumentConfig] = Field(default_factory=lambda: list(DEFAULT_INSTRUMENTS))
