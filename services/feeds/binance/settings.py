"""Binance feed settings (env prefix TRADE_, e.g. TRADE_BINANCE_ENABLED=1, TRADE_BINANCE_SYMBOLS='["BTCUSDT"]')."""

from __future__ import annotations

from services.runtime.settings import ServiceSettings


class BinanceFeedSettings(ServiceSettings):
    """Where the feed connects and how it paces itself. Off unless enabled: prism is the mesh's default venue."""

    service_name: str = "feed-binance"
    binance_enabled: bool = False
    binance_ws_url: str = "wss://stream.binance.com:9443"
    binance_rest_url: str = "https://api.binance.com"
    binance_symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    binance_depth_limit: int = 1000
    binance_depth_interval_ms: int = 100
    # Client pings (aiohttp heartbeat) on top of answering the server's pings; a silent connection is dropped.
    binance_heartbeat_s: float = 20.0
    binance_receive_timeout_s: float = 60.0
    # Binance closes every connection after 24 h; rotate a little earlier, on our own terms.
    binance_max_connection_age_s: float = 23.5 * 3600
    binance_backoff_initial_s: float = 0.5
    binance_backoff_cap_s: float = 30.0
    binance_rest_timeout_s: float = 10.0
    binance_rest_weight_limit_1m: int = 6000
    binance_max_depth_buffer: int = 10_000
    binance_publish_queue: int = 10_000
