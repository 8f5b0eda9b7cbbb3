"""QuestDB DDL of the sink's tables, applied through the HTTP /exec endpoint (idempotent: IF NOT EXISTS).

Prices and quantities are DECIMAL(38,18) (exact; the API's Decimal allows at most 18 fraction digits).
Timestamps are TIMESTAMP_NS. Tables are WAL tables partitioned by day with DEDUP UPSERT KEYS, so writing the
same tick twice (a JetStream redelivery or replay) keeps one row. ohlcv_1m is a materialized view over trades
(SAMPLE BY 1m, refreshed incrementally by QuestDB after each commit to trades), so bars are derived
idempotently from the deduplicated trades.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp


@dataclass(frozen=True)
class TableNames:
    trades: str = "trades"
    quotes: str = "quotes"
    bars_1m: str = "ohlcv_1m"


def ddl(names: TableNames) -> list[str]:
    return [
        f"""CREATE TABLE IF NOT EXISTS {names.trades} (
            ts TIMESTAMP_NS, symbol SYMBOL, venue SYMBOL, trade_id VARCHAR, sequence LONG,
            price DECIMAL(38, 18), quantity DECIMAL(38, 18), aggressor_side SYMBOL,
            receive_ts TIMESTAMP_NS, publish_ts TIMESTAMP_NS
        ) TIMESTAMP(ts) PARTITION BY DAY WAL DEDUP UPSERT KEYS(ts, symbol, trade_id)""",
        f"""CREATE TABLE IF NOT EXISTS {names.quotes} (
            ts TIMESTAMP_NS, symbol SYMBOL, venue SYMBOL, sequence LONG,
            bid_price DECIMAL(38, 18), bid_size DECIMAL(38, 18),
            ask_price DECIMAL(38, 18), ask_size DECIMAL(38, 18),
            receive_ts TIMESTAMP_NS, publish_ts TIMESTAMP_NS
        ) TIMESTAMP(ts) PARTITION BY DAY WAL DEDUP UPSERT KEYS(ts, symbol, sequence)""",
        f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {names.bars_1m} AS (
            SELECT ts, symbol, venue,
                   first(price) AS open, max(price) AS high, min(price) AS low, last(price) AS close,
                   sum(quantity) AS volume, sum(price * quantity) AS notional, count() AS trades
            FROM {names.trades} SAMPLE BY 1m
        ) PARTITION BY DAY""",
    ]


class QuestDbSql:
    """A tiny client of QuestDB's HTTP /exec endpoint (DDL and small queries)."""

    def __init__(self, http_url: str, timeout_s: float = 10.0) -> None:
        self._url = http_url.rstrip("/") + "/exec"
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def execute(self, sql: str) -> dict[str, object]:
        async with (
            aiohttp.ClientSession(timeout=self._timeout) as session,
            session.get(self._url, params={"query": sql}) as resp,
        ):
            body: dict[str, object] = await resp.json(content_type=None)
            if resp.status != 200 or "error" in body:
                raise RuntimeError(f"QuestDB rejected {sql.split()[0:4]}: {body.get('error', resp.status)}")
            return body

    async def ensure_schema(self, names: TableNames) -> None:
        for statement in ddl(names):
            await self.execute(statement)
