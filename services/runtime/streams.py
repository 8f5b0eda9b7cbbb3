"""Every JetStream stream of the mesh, declared once. Services ensure the ones they own at start-up."""

from __future__ import annotations

from nats.js import api

from services.runtime.bus import StreamSpec

MARKET_DATA = StreamSpec(
    name="MD",
    subjects=("md.quote.>", "md.trade.>", "md.book.>"),
    storage=api.StorageType.FILE,
    max_age_s=24 * 3600,
    duplicate_window_s=60,
)
MARKET_DATA_RAW = StreamSpec(
    name="MD_RAW",
    subjects=("md.raw.>",),
    storage=api.StorageType.FILE,
    max_age_s=6 * 3600,
    duplicate_window_s=60,
)
ORDERS = StreamSpec(name="ORDERS", subjects=("orders.>",), duplicate_window_s=24 * 3600)
FILLS = StreamSpec(name="FILLS", subjects=("fills.>",), duplicate_window_s=24 * 3600)
AUTHN = StreamSpec(name="AUTHN", subjects=("authn.>",), duplicate_window_s=3600)

ALL_STREAMS = (MARKET_DATA, MARKET_DATA_RAW, ORDERS, FILLS, AUTHN)
