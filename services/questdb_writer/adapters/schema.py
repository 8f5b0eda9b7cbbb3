"""QuestDB DDL of the writer's tables, applied through the HTTP /exec endpoint (idempotent: IF NOT EXISTS).

Amounts are DECIMAL(38,18) (exact), timestamps TIMESTAMP_NS. WAL tables partitioned by day with DEDUP UPSERT
KEYS on (designated timestamp, event id [, symbol]), so a replayed message keeps one row.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

_AMOUNT = "DECIMAL(38, 18)"


@dataclass(frozen=True)
class TableNames:
    fills: str = "fills"
    order_events: str = "order_events"
    pnl_snapshots: str = "pnl_snapshots"


def ddl(names: TableNames) -> list[str]:
    return [
        f"""CREATE TABLE IF NOT EXISTS {names.fills} (
            ts TIMESTAMP_NS, fill_id VARCHAR, order_id VARCHAR, client_order_id VARCHAR,
            account_id SYMBOL, symbol SYMBOL, side SYMBOL, price {_AMOUNT}, quantity {_AMOUNT}, fee {_AMOUNT},
            fee_currency SYMBOL, liquidity SYMBOL, venue SYMBOL, venue_order_id VARCHAR, venue_trade_id VARCHAR,
            strategy_id SYMBOL, parent_order_id VARCHAR, receive_ts TIMESTAMP_NS
        ) TIMESTAMP(ts) PARTITION BY DAY WAL DEDUP UPSERT KEYS(ts, fill_id)""",
        f"""CREATE TABLE IF NOT EXISTS {names.order_events} (
            ts TIMESTAMP_NS, event_id VARCHAR, account_id SYMBOL, symbol SYMBOL, order_id VARCHAR,
            client_order_id VARCHAR, order_version LONG, event_type SYMBOL, status SYMBOL, side SYMBOL,
            order_type SYMBOL, quantity {_AMOUNT}, limit_price {_AMOUNT}, stop_price {_AMOUNT}, cum_qty {_AMOUNT},
            leaves_qty {_AMOUNT}, avg_price {_AMOUNT}, cum_fee {_AMOUNT}, fee_currency SYMBOL, venue SYMBOL,
            strategy_id SYMBOL, parent_order_id VARCHAR, reason SYMBOL, reason_message VARCHAR, fill_id VARCHAR,
            receive_ts TIMESTAMP_NS
        ) TIMESTAMP(ts) PARTITION BY DAY WAL DEDUP UPSERT KEYS(ts, event_id)""",
        f"""CREATE TABLE IF NOT EXISTS {names.pnl_snapshots} (
            ts TIMESTAMP_NS, snapshot_id VARCHAR, kind SYMBOL, account_id SYMBOL, trading_day SYMBOL,
            symbol SYMBOL, currency SYMBOL, realized_pnl {_AMOUNT}, unrealized_pnl {_AMOUNT}, fees {_AMOUNT},
            net_pnl {_AMOUNT}, day_net_pnl {_AMOUNT}, position_quantity {_AMOUNT}, mark_price {_AMOUNT},
            fill_id VARCHAR
        ) TIMESTAMP(ts) PARTITION BY DAY WAL DEDUP UPSERT KEYS(ts, snapshot_id, symbol)""",
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
