"""Order entry through the whole edge (Envoy + JWT + OPA) and the trading core, side by side in one run:

1. SubmitOrder -> acknowledgement at fixed rates and at saturation (ghz), next to a trivial unary RPC (authn
   WhoAmI) through the same edge: the ceiling the edge allows. Orders are IOC limits 2 % under the market, so
   each one travels the whole path (oms -> risk -> ORDERS -> exeq -> live-gateway -> prism) and expires there,
   leaving no position or open order behind.
2. submit -> fill seen on StreamFills at fixed rates: marketable IOC limits alternating buy and sell, each
   stamped at submit and matched to its fill on the account's fill stream.

After every cell the run waits until the account has no open order left (the pipeline drained) and reports how
long that took: a cell never inherits the previous one's backlog.

A fresh benchmark account gets raised order-rate and open-order limits first (risk UpdateLimits, as admin).
Prints a table and writes JSON to bench/results/order_entry.json.

    .venv/bin/python -m bench.order_entry [--duration 10] [--rates 20,50,200,500] [--fill-rates 20,50,200]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from dataclasses import asdict, dataclass
from decimal import Decimal

import numpy as np
import typer
from rich.console import Console
from rich.table import Table
from trade.oms.v1 import oms_pb2
from trade.risk.v1 import limits_pb2, risk_pb2, risk_pb2_grpc

from bench.edge_overhead import RESULTS, Result, ghz_report, summarize
from mesh.ports import load_ports
from tests.support.trading import TraderClient, far_limit, marketable_limit

SYMBOL = "BTCUSDT"
QTY = "0.001"
SUBMIT = "trade.oms.v1.OmsService.SubmitOrder"
WHOAMI = "trade.authn.v1.AuthnService.WhoAmI"


@dataclass
class FillLatency:
    rate: int
    submitted: int
    filled: int
    p50_ms: float
    p99_ms: float
    max_ms: float


async def _bench_account(admin: TraderClient) -> None:
    risk = risk_pb2_grpc.RiskServiceStub(admin.channel)
    await risk.UpdateLimits(
        risk_pb2.UpdateLimitsRequest(
            account_id=admin.account,
            limits=limits_pb2.AccountLimits(
                account_id=admin.account, max_open_orders=100_000, max_orders_per_second=100_000
            ),
            reason="order-entry benchmark account",
        ),
        metadata=admin.auth,
        timeout=5,
    )


async def _submit_to_fill(admin: TraderClient, rate: int, duration: int) -> FillLatency:
    buy = await marketable_limit(admin, SYMBOL, 1, QTY)
    sell = await marketable_limit(admin, SYMBOL, 2, QTY)
    sent_at: dict[str, int] = {}
    latencies: list[float] = []
    watch = admin.oms.StreamFills(oms_pb2.StreamFillsRequest(account_id=admin.account), metadata=admin.auth)
    seen: set[str] = set()
    progress = asyncio.Event()

    async def collect() -> None:
        async for response in watch:
            fill = response.fill if response.WhichOneof("payload") == "fill" else None
            if fill is not None and fill.order_id in sent_at and fill.order_id not in seen:
                seen.add(fill.order_id)
                latencies.append((time.perf_counter_ns() - sent_at[fill.order_id]) / 1e6)
                progress.set()

    collector = asyncio.create_task(collect())
    await asyncio.sleep(0.5)
    tasks: list[asyncio.Task[None]] = []

    async def one(i: int) -> None:
        started = time.perf_counter_ns()
        order = await admin.submit(SYMBOL, buy if i % 2 == 0 else sell, client_order_id=f"fl-{uuid.uuid4().hex}")
        sent_at.setdefault(order.order_id, started)

    interval, start = 1.0 / rate, time.perf_counter()
    for i in range(rate * duration):
        await asyncio.sleep(max(0.0, start + i * interval - time.perf_counter()))
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks, return_exceptions=True)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(10):  # the last fills
            while len(seen) < len(sent_at):
                progress.clear()
                await progress.wait()
    collector.cancel()
    watch.cancel()
    arr = np.array(latencies) if latencies else np.array([float("nan")])
    return FillLatency(
        rate=rate,
        submitted=len(sent_at),
        filled=len(latencies),
        p50_ms=round(float(np.percentile(arr, 50)), 3),
        p99_ms=round(float(np.percentile(arr, 99)), 3),
        max_ms=round(float(arr.max()), 3),
    )


async def _drain(account: str, limit_s: float = 180) -> float:
    """Wait until the account has no open order left (every IOC expired or filled downstream): the next cell then
    starts on an idle pipeline. Returns the seconds it took (the backlog the previous cell left)."""
    client = await TraderClient.login("admin", account)
    started = time.monotonic()
    try:
        while time.monotonic() - started < limit_s:
            page = await client.oms.ListOrders(
                oms_pb2.ListOrdersRequest(account_id=account, open_only=True, page_size=1),
                metadata=client.auth,
                timeout=10,
            )
            if not page.orders:
                break
            await asyncio.sleep(0.5)
        return round(time.monotonic() - started, 1)
    finally:
        await client.close()


async def _setup() -> tuple[TraderClient, str]:
    admin = await TraderClient.login("admin", f"ACC-BENCH-{uuid.uuid4().hex[:8].upper()}")
    await _bench_account(admin)
    spec = await far_limit(admin, SYMBOL, 1, QTY)
    data = json.dumps(
        {
            "accountId": admin.account,
            "symbol": SYMBOL,
            "clientOrderId": f"ack-{uuid.uuid4().hex[:8]}-{{{{.RequestNumber}}}}",
            "spec": {
                "side": "SIDE_BUY",
                "orderType": "ORDER_TYPE_LIMIT",
                "quantity": {"value": QTY},
                "limitPrice": {"value": spec.limit_price.value},
                "timeInForce": "TIME_IN_FORCE_IOC",
            },
        }
    )
    return admin, data


def main(
    duration: int = typer.Option(10, help="seconds per measurement"),
    rates: str = typer.Option("20,50,200,500", help="fixed SubmitOrder rates, comma separated"),
    fill_rates: str = typer.Option("20,50,200", help="orders/s for the submit -> fill measurements"),
    concurrency: int = typer.Option(64, help="ghz workers"),
) -> None:
    console = Console()
    admin, data = asyncio.run(_setup())
    edge = f"127.0.0.1:{load_ports().edge['envoy']}"
    auth = {"authorization": dict(admin.auth)["authorization"]}
    acks: list[Result] = []
    drains: dict[str, float] = {}
    for rate in [*(int(r) for r in rates.split(",") if r), None]:
        label = str(rate) if rate else "saturation"
        acks.append(summarize("WhoAmI", label, ghz_report(edge, auth, rate, duration, concurrency, WHOAMI)))
        acks.append(summarize("SubmitOrder", label, ghz_report(edge, auth, rate, duration, concurrency, SUBMIT, data)))
        drains[label] = asyncio.run(_drain(admin.account))

    async def fills(rate: int) -> FillLatency:
        client = await TraderClient.login("admin", admin.account)
        try:
            return await _submit_to_fill(client, rate, duration)
        finally:
            await client.close()

    fill_results = []
    for rate in (int(r) for r in fill_rates.split(",") if r):
        fill_results.append(asyncio.run(fills(rate)))
        drains[f"fills@{rate}"] = asyncio.run(_drain(admin.account))

    table = Table(title=f"through the edge (Envoy + JWT + OPA) — {duration}s per cell, ghz -c {concurrency}")
    for column in ("rpc", "rate (req/s)", "requests", "ok", "throughput (req/s)", "p50 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="right")
    for r in acks:
        table.add_row(
            r.path,
            r.rate,
            str(r.requests),
            str(r.ok),
            f"{r.rps:.0f}",
            f"{r.p50_ms:.2f}",
            f"{r.p99_ms:.2f}",
            f"{r.max_ms:.1f}",
        )
    console.print(table)
    by = {(r.path, r.rate): r for r in acks}
    ratio = {
        label: round(by[("SubmitOrder", label)].rps / by[("WhoAmI", label)].rps, 3)
        for label in {r.rate for r in acks}
        if by[("WhoAmI", label)].rps
    }
    fills_table = Table(title=f"submit -> fill seen on StreamFills, {duration}s per rate")
    for column in ("orders/s", "submitted", "fills seen", "p50 ms", "p99 ms", "max ms"):
        fills_table.add_column(column, justify="right")
    for fill in fill_results:
        fills_table.add_row(
            str(fill.rate),
            str(fill.submitted),
            str(fill.filled),
            f"{fill.p50_ms:.2f}",
            f"{fill.p99_ms:.2f}",
            f"{fill.max_ms:.1f}",
        )
    console.print(fills_table)
    console.print_json(data={"seconds_to_drain_after_cell": drains})
    console.print_json(data={"submit_throughput_vs_whoami": ratio})
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "order_entry.json"
    out.write_text(
        json.dumps(
            {
                "duration_s": duration,
                "concurrency": concurrency,
                "account": admin.account,
                "acks": [asdict(r) for r in acks],
                "submit_throughput_vs_whoami": ratio,
                "submit_to_fill": [asdict(f) for f in fill_results],
                "seconds_to_drain_after_cell": drains,
                "quantity": str(Decimal(QTY)),
            },
            indent=2,
        )
    )
    console.print(f"wrote {out}")


if __name__ == "__main__":
    typer.run(main)
