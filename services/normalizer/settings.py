"""normalizer settings (env prefix TRADE_, e.g. TRADE_DURABLE=normalizer-2)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from mesh.ports import load_ports
from services.runtime.settings import ServiceSettings


class InstrumentScale(BaseModel):
    """Tick and lot size of an instrument: the scale of PRISM's integer ticks and lots."""

    symbol: str
    tick_size: str
    lot_size: str


# The simulated instruments (the same tick/lot sizes PRISM lists in ListInstruments).
DEFAULT_INSTRUMENTS = [
    InstrumentScale(symbol="BTCUSDT", tick_size="0.01", lot_size="0.00001"),
    InstrumentScale(symbol="ETHUSDT", tick_size="0.01", lot_size="0.0001"),
    InstrumentScale(symbol="SOLUSDT", tick_size="0.01", lot_size="0.001"),
]


class NormalizerSettings(ServiceSettings):
    service_name: str = "normalizer"
    port: int = Field(default_factory=lambda: load_ports().service("normalizer"))
    # Durable pull consumer on MD_RAW (md.raw.>).
    durable: str = "normalizer"
    raw_stream: str = "MD_RAW"
    raw_subject: str = "md.raw.>"
    fetch_batch: int = 1000
    instruments: list[InstrumentScale] = Field(default_factory=lambda: list(DEFAULT_INSTRUMENTS))
