"""live-gateway settings (env prefix TRADE_: TRADE_PRISM_TARGET, TRADE_PAPER_SLIPPAGE_BPS, TRADE_BINANCE_API_KEY ...).

Venues: prism and paper are on by default; Binance spot only when an API key, its secret and the OMS account that
trades through it are configured (TRADE_BINANCE_API_KEY, TRADE_BINANCE_API_SECRET, TRADE_BINANCE_ACCOUNT_ID).
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field, SecretStr

from mesh.ports import load_ports
from services.runtime.settings import ServiceSettings


class LiveGatewaySettings(ServiceSettings):
    service_name: str = "live_gateway"
    port: int = Field(default_factory=lambda: load_ports().service("live_gateway"))

    prism_enabled: bool = True
    prism_target: str = Field(default_factory=lambda: f"127.0.0.1:{load_ports().service('prism')}")
    prism_deadline_s: float = 2.0
    # PRISM member accounts whose executions stream from start-up (others start with their first order, and
    # accounts with reports in EXEC are resumed on start).
    prism_accounts: list[str] = Field(default_factory=list)
    prism_probe_interval_s: float = 5.0

    paper_enabled: bool = True
    paper_slippage_bps: Decimal = Decimal(1)
    paper_maker_fee_bps: Decimal = Decimal(1)
    paper_taker_fee_bps: Decimal = Decimal(5)
    md_stream: str = "MD"
    quote_subject_prefix: str = "md.quote"

    binance_api_key: str = ""
    binance_api_secret: SecretStr = SecretStr("")
    binance_account_id: str = ""
    binance_trade_rest_url: str = "https://api.binance.com"
    binance_trade_ws_url: str = "wss://stream.binance.com:9443"
    binance_recv_window_ms: int = 5000
    binance_order_limit_10s: int = 100

    # Accounts whose last report is older than this are not resumed on start (default: EXEC's dedup window).
    resume_window_s: float = 24 * 3600
    # StreamExecutionReports: heartbeat when idle, and how far a client may lag before its stream is closed.
    stream_heartbeat_s: float = 5.0
    stream_queue_size: int = 10_000

    @property
    def binance_enabled(self) -> bool:
        return bool(self.binance_api_key and self.binance_api_secret.get_secret_value() and self.binance_account_id)
