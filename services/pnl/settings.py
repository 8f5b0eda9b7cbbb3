"""pnl settings (env prefix TRADE_: TRADE_DURABLE, TRADE_FILLS_SUBJECT, TRADE_QUOTE_SUBJECT, ...)."""

from __future__ import annotations

from pydantic import Field

from mesh.ports import load_ports
from services.runtime.settings import ServiceSettings


class PnlSettings(ServiceSettings):
    service_name: str = "pnl"
    port: int = Field(default_factory=lambda: load_ports().service("pnl"))
    fills_stream: str = "FILLS"
    # What the fill consumer (and the start-up replay) reads; tests narrow it to one account.
    fills_subject: str = "fills.>"
    # One account's fills (a cell that fills reach out of log order is rebuilt from them).
    account_fills_subject: str = "fills.{account}.>"
    durable: str = "pnl"
    batch_size: int = 500
    # short: acks lost with a NATS connection come back this soon (handling is idempotent per fill id)
    ack_wait_s: float = 5.0
    # Marks: core NATS quotes (subscription) and the MD stream (priming from the last stored quote).
    quote_subject: str = "md.quote.>"
    quote_subject_prefix: str = "md.quote"
    md_stream: str = "MD"
    # Snapshots: published as pnl.<account_id>; end-of-day ones read back from this filter at start.
    pnl_stream: str = "PNL"
    pnl_subject_prefix: str = "pnl"
    pnl_subject: str = "pnl.>"
    # Currency of aggregates over symbols of different quote assets (no conversion is made).
    reporting_currency: str = "USDT"
    # StreamPnl: mark-driven updates at most this often per stream (the request's min_interval_ms, 0 = 1000, is
    # raised to this floor); heartbeat after this long without a message.
    min_stream_interval_ms: int = 250
    heartbeat_interval_s: float = 5.0
    replay_message_timeout_s: float = 5.0
    end_of_day: bool = True
