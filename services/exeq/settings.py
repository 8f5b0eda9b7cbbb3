"""exeq settings (env prefix TRADE_, e.g. TRADE_ROUTER_DURABLE=exeq-router-2, TRADE_LIVE_GATEWAY_TARGET=...)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from mesh.ports import load_ports
from services.runtime.settings import ServiceSettings


class InstrumentConfig(BaseModel):
    """An instrument exeq can slice: its lot size and the venue it trades on by default (Venue name sans VENUE_)."""

    symbol: str
    lot_size: str
    venue: str = "PRISM"


DEFAULT_INSTRUMENTS = [
    InstrumentConfig(symbol="BTCUSDT", lot_size="0.00001"),
    InstrumentConfig(symbol="ETHUSDT", lot_size="0.0001"),
    InstrumentConfig(symbol="SOLUSDT", lot_size="0.001"),
]

# Relative traded volume per UTC hour (00-01 ... 23-24) of a crypto spot market: a trough in the Asian night,
# the peak around the US open.
DEFAULT_VWAP_PROFILE = [
    "4.2", "3.9", "3.6", "3.4", "3.3", "3.4", "3.6", "3.8", "4.0", "4.1", "4.1", "4.2",
    "4.4", "4.8", "5.3", "5.6", "5.3", "4.8", "4.4", "4.1", "3.9", "3.8", "3.9", "4.1",
]  # fmt: skip


def _target(service: str) -> str:
    return f"127.0.0.1:{load_ports().service(service)}"


class ExeqSettings(ServiceSettings):
    service_name: str = "exeq"
    port: int = Field(default_factory=lambda: load_ports().service("exeq"))
    live_gateway_target: str = Field(default_factory=lambda: _target("live_gateway"))
    oms_target: str = Field(default_factory=lambda: _target("oms"))
    # Deadlines of the calls on the order path (the router retries UNAVAILABLE / DEADLINE_EXCEEDED).
    gateway_deadline_s: float = 2.0
    oms_deadline_s: float = 3.0
    # Router: durable pull consumer on ORDERS.
    orders_stream: str = "ORDERS"
    orders_subject: str = "orders.>"
    router_durable: str = "exeq-router"
    router_batch: int = 256
    # Batches routed concurrently (one order's events stay in order across them).
    router_max_in_flight: int = 4
    ack_wait_s: float = 30.0
    # A durable created for the first time starts at new messages (an old ORDERS history is never re-routed).
    deliver_new_on_create: bool = True
    # Child order events (fills, done) of parent orders: a second durable on ORDERS.
    children_durable: str = "exeq-children"
    # Parent order events: published to <parent_subject_prefix>.<account_id>.<symbol> on stream EXEQ and
    # replayed from parents_filter at start-up.
    exeq_stream: str = "EXEQ"
    parent_subject_prefix: str = "exeq.parent"
    parents_filter: str = "exeq.parent.>"
    # POV: public trades (core NATS, MarketDataBatch of trade events) under <md_trade_prefix>.<symbol>.
    md_trade_prefix: str = "md.trade"
    fallback_venue: str = "PRISM"
    instruments: list[InstrumentConfig] = Field(default_factory=lambda: list(DEFAULT_INSTRUMENTS))
    vwap_profile: list[str] = Field(default_factory=lambda: list(DEFAULT_VWAP_PROFILE))
    max_participation_rate: str = "0.5"
    pov_min_child_lots: int = 1
    # StreamParentOrderUpdates keep-alive interval.
    stream_heartbeat_s: float = 5.0
