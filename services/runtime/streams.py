"""Every JetStream stream of the mesh, declared once. Services ensure the ones they own at start-up."""

from __future__ import annotations

from nats.js import api

from services.runtime.bus import StreamSpec

# Market data (MD and MD_RAW) acks before the fsync (persist_mode async): thousands of ticks/s instead of the
# ~1.5k/s that sync_interval: always allows; a NATS crash may lose the last unflushed ticks (clients see sequence
# gaps, books resync on the next snapshot). ORDERS, FILLS and the rest keep the fsync before every ack.
MARKET_DATA = StreamSpec(
    name="MD",
    subjects=("md.quote.>", "md.trade.>", "md.book.>"),
    storage=api.StorageType.FILE,
    max_age_s=24 * 3600,
    duplicate_window_s=60,
    persist_mode=api.PersistMode.ASYNC,
)
MARKET_DATA_RAW = StreamSpec(
    name="MD_RAW",
    subjects=("md.raw.>",),
    storage=api.StorageType.FILE,
    max_age_s=6 * 3600,
    duplicate_window_s=60,
    persist_mode=api.PersistMode.ASYNC,
)
ORDERS = StreamSpec(name="ORDERS", subjects=("orders.>",), duplicate_window_s=24 * 3600)
FILLS = StreamSpec(name="FILLS", subjects=("fills.>",), duplicate_window_s=24 * 3600)
AUTHN = StreamSpec(name="AUTHN", subjects=("authn.>",), duplicate_window_s=3600)
# Venue execution reports from the live-gateway (exec.<venue>.<account_id>), consumed by the OMS and exeq.
EXEC = StreamSpec(name="EXEC", subjects=("exec.>",), duplicate_window_s=24 * 3600)
# Parent (algorithmic) order events from exeq (exeq.parent.<account_id>.<symbol>).
EXEQ = StreamSpec(name="EXEQ", subjects=("exeq.>",), duplicate_window_s=24 * 3600)
# Kill-switch events (risk.killswitch.<scope>) and limit-change audit (risk.limits.audit) from risk.
RISK = StreamSpec(name="RISK", subjects=("risk.>",), duplicate_window_s=24 * 3600)
# Position changes from ptrc (positions.<account_id>.<symbol>).
POSITIONS = StreamSpec(name="POSITIONS", subjects=("positions.>",), duplicate_window_s=3600, max_age_s=7 * 24 * 3600)
# PnL snapshots from pnl (pnl.<account_id>).
PNL = StreamSpec(name="PNL", subjects=("pnl.>",), duplicate_window_s=3600, max_age_s=7 * 24 * 3600)

ALL_STREAMS = (MARKET_DATA, MARKET_DATA_RAW, ORDERS, FILLS, AUTHN, EXEC, EXEQ, RISK, POSITIONS, PNL)
