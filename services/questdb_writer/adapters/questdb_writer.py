"""The ILP-over-HTTP writer: one buffer per batch; the flush returns once QuestDB committed the rows (HTTP 2xx),
the moment the JetStream batch may be acknowledged. Rows are encoded on the event loop, the flush runs in a worker
thread; a pool of senders lets the three consumers flush in parallel, and a sender whose flush failed is closed
and replaced on next use. Empty strings are written as NULL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from questdb import Sender, TimestampNanos

from services.questdb_writer.domain.model import FillRow, Kind, OrderEventRow, PnlRow, Row


def _symbols(values: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in values.items() if v}


def _columns(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None and v != ""}


def _ts(ns: int) -> TimestampNanos | None:
    return TimestampNanos(ns) if ns else None


class QuestDbIlpWriter:
    def __init__(self, ilp_conf: str, tables: dict[Kind, str], pool_size: int = 3) -> None:
        self._conf = ilp_conf
        self._tables = tables
        self._free: asyncio.Queue[Sender | None] = asyncio.Queue()
        self._all: set[Sender] = set()
        for _ in range(pool_size):
            self._free.put_nowait(None)

    def _connect(self) -> Sender:
        sender = Sender.from_conf(self._conf)
        sender.establish()  # type: ignore[no-untyped-call]
        return sender

    def _fill(self, buf: Any, kind: Kind, rows: Sequence[Row]) -> None:
        table = self._tables[kind]
        for row in rows:
            if isinstance(row, FillRow):
                symbols = _symbols(
                    {"account_id": row.account_id, "symbol": row.symbol, "side": row.side,
                     "fee_currency": row.fee_currency, "liquidity": row.liquidity, "venue": row.venue,
                     "strategy_id": row.strategy_id}
                )  # fmt: skip
                columns = _columns(
                    {"fill_id": row.fill_id, "order_id": row.order_id, "client_order_id": row.client_order_id,
                     "price": row.price, "quantity": row.quantity, "fee": row.fee,
                     "venue_order_id": row.venue_order_id, "venue_trade_id": row.venue_trade_id,
                     "parent_order_id": row.parent_order_id, "receive_ts": _ts(row.receive_time_ns)}
                )  # fmt: skip
            elif isinstance(row, OrderEventRow):
                symbols = _symbols(
                    {"account_id": row.account_id, "symbol": row.symbol, "event_type": row.event_type,
                     "status": row.status, "side": row.side, "order_type": row.order_type,
                     "fee_currency": row.fee_currency, "venue": row.venue, "strategy_id": row.strategy_id,
                     "reason": row.reason}
                )  # fmt: skip
                columns = _columns(
                    {"event_id": row.event_id, "order_id": row.order_id, "client_order_id": row.client_order_id,
                     "order_version": row.order_version, "quantity": row.quantity, "limit_price": row.limit_price,
                     "stop_price": row.stop_price, "cum_qty": row.cum_qty, "leaves_qty": row.leaves_qty,
                     "avg_price": row.avg_price, "cum_fee": row.cum_fee, "parent_order_id": row.parent_order_id,
                     "reason_message": row.reason_message, "fill_id": row.fill_id,
                     "receive_ts": _ts(row.receive_time_ns)}
                )  # fmt: skip
            elif isinstance(row, PnlRow):
                symbols = _symbols(
                    {"kind": row.kind, "account_id": row.account_id, "trading_day": row.trading_day,
                     "symbol": row.symbol, "currency": row.currency}
                )  # fmt: skip
                columns = _columns(
                    {"snapshot_id": row.snapshot_id, "realized_pnl": row.realized_pnl,
                     "unrealized_pnl": row.unrealized_pnl, "fees": row.fees, "net_pnl": row.net_pnl,
                     "day_net_pnl": row.day_net_pnl, "position_quantity": row.position_quantity,
                     "mark_price": row.mark_price, "fill_id": row.fill_id}
                )  # fmt: skip
            buf.row(table, symbols=symbols, columns=columns, at=TimestampNanos(row.ts_ns))

    async def write(self, kind: Kind, rows: Sequence[Row]) -> None:
        sender = await self._free.get()
        try:
            if sender is None:
                sender = await asyncio.to_thread(self._connect)
            buf = sender.new_buffer()
            self._fill(buf, kind, rows)
            await asyncio.to_thread(sender.flush, buf)
            self._all.add(sender)
        except BaseException:
            if sender is not None:
                self._all.discard(sender)
                with contextlib.suppress(Exception):
                    sender.close(False)
            sender = None
            raise
        finally:
            self._free.put_nowait(sender)

    async def close(self) -> None:
        for sender in list(self._all):
            with contextlib.suppress(Exception):
                await asyncio.to_thread(sender.close, False)
        self._all.clear()
