"""Bars from QuestDB's ohlcv_1m (written by sink-ticks) over the HTTP /exec endpoint."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import aiohttp
import structlog

from services.marketdata.domain.bars import SYMBOL_RE, BarRow, Interval

log = structlog.get_logger("marketdata.questdb")
NS_PER_US = 1000


def _ts_ns(value: Any) -> int:
    if isinstance(value, int):
        return value * NS_PER_US
    text = str(value)
    # "2026-11-25T22:15:00.000000Z" (microseconds) or with nanoseconds
    head, _, frac = text.rstrip("Z").partition(".")
    base = datetime.fromisoformat(head + "+00:00")
    frac_ns = int((frac + "000000000")[:9]) if frac else 0
    return int(base.timestamp()) * 1_000_000_000 + frac_ns


def _dec(value: Any) -> Decimal:
    if value is None:
        return Decimal(0)
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(str(value))


class QuestDbBars:
    """Queries the one-minute bar table and aggregates on read (SAMPLE BY) for longer intervals.

    The column layout is read from QuestDB (table_columns) so optional columns (notional, trade_count) and the
    designated timestamp's name follow whatever sink-ticks created; an absent table yields no bars.
    """

    def __init__(self, url: str, table: str = "ohlcv_1m", timeout_s: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.table = table
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._columns: dict[str, str] | None = None
        self._ts: str = "ts"

    async def _exec(self, sql: str) -> dict[str, Any] | None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        async with self._session.get(f"{self.url}/exec", params={"query": sql}) as resp:
            body: dict[str, Any] = await resp.json(content_type=None)
            if resp.status != 200 or "error" in body:
                log.info("questdb.query_failed", status=resp.status, error=body.get("error"), sql=sql)
                return None
            return body

    async def _layout(self) -> bool:
        if self._columns is not None:
            return True
        body = await self._exec(f"SELECT \"column\", type, designated FROM table_columns('{self.table}')")
        if body is None or not body.get("dataset"):
            return False
        self._columns = {str(row[0]): str(row[1]) for row in body["dataset"]}
        self._ts = next((str(row[0]) for row in body["dataset"] if row[2]), "ts")
        return True

    async def bars(self, symbol: str, interval: Interval, start_ns: int, end_ns: int, limit: int) -> list[BarRow]:
        if not SYMBOL_RE.match(symbol):  # never interpolate anything else into SQL
            return []
        if not await self._layout():
            return []
        cols = self._columns or {}
        ts = self._ts
        select = [
            f"{ts}",
            "first(open) open",
            "max(high) high",
            "min(low) low",
            "last(close) close",
            "sum(volume) volume",
            "sum(notional) notional" if "notional" in cols else "NULL notional",
            next((f"sum({c}) trade_count" for c in ("trades", "trade_count") if c in cols), "0 trade_count"),
            "last(venue) venue" if "venue" in cols else "'' venue",
        ]
        sql = (
            f"SELECT {', '.join(select)} FROM {self.table} WHERE symbol = '{symbol}'"
            f" AND {ts} >= CAST({start_ns // NS_PER_US} AS TIMESTAMP)"
            f" AND {ts} < CAST({end_ns // NS_PER_US} AS TIMESTAMP)"
            f" SAMPLE BY {interval.sample_by} ALIGN TO CALENDAR ORDER BY {ts} LIMIT {int(limit)}"
        )
        body = await self._exec(sql)
        if body is None:
            self._columns = None  # the table may have been dropped or re-created: read the layout again
            return []
        return [
            BarRow(
                start_time_ns=_ts_ns(row[0]),
                open=_dec(row[1]),
                high=_dec(row[2]),
                low=_dec(row[3]),
                close=_dec(row[4]),
                volume=_dec(row[5]),
                notional=None if row[6] is None else _dec(row[6]),
                trade_count=int(row[7] or 0),
                venue=str(row[8] or ""),
            )
            for row in body.get("dataset", [])
        ]

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
