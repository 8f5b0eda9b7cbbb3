"""Order entry through the whole edge (Envoy + JWT + OPA) and the trading core, side by side in one run:

1. SubmitOrder -> acknowledgement at fixed rates and at saturation (ghz), next to a trivial unary RPC (authn
   WhoAmI) through the same edge: the ceiling the edge allows. Orders are IOC limits 2 % under the market, so
   each one travels the whole path (oms -> risk -> ORDERS -> exeq -> live-gateway -> prism) and expires there,
   leaving no position or open order behind.
2. submit -> fill seen on StreamFills at fixed rates: marketable IOC limits alternating buy and sell, each
   stamped at submit and matched to its fill on the account's fill stream. Then where that time went: per
   stage, the lag between the JetStream store times of each order's first ORDERS event (accepted), first EXEC
   report, first FILLS message and ORDERS fill event (server clock, same box as the submit stamp).

After every cell the run waits until the account has no open order left and every live consumer of the order
path's streams (ORDERS, EXEC, FILLS, POSITIONS, PNL, EXEQ, RISK) caught up (the pipeline drained), and reports how
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
from dataclasses import asdict, dataclass, field
from decimal import Decimal

import nats
import numpy as np
import typer
from nats.js import JetStreamContext, api
from rich.console import Console
from rich.table import Table
from trade.live_gateway.v1 import events_pb2 as exec_events_pb2
from trade.oms.v1 import events_pb2 as order_events_pb2
from trade.oms.v1 import oms_pb2
from trade.risk.v1 import limits_pb2, risk_pb2, risk_pb2_grpc
from trade.type.v1 import fill_pb2

from bench.edge_overhead import RESULTS, Result, ghz_report, summarize
from mesh.ports import load_ports
from services.runtime.settings import infra_url
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
    # Where the time went, from JetStream's store timestamps: stage -> (p50 ms, p99 ms).
    stages: dict[str, tuple[float, float]] = field(default_factory=dict)


STAGES = (
    ("submit -> ORDERS accepted", "submit", "accepted"),
    ("ORDERS -> first EXEC report", "accepted", "exec"),
    ("first EXEC report -> FILLS", "exec", "fill"),
    ("FILLS -> ORDERS filled", "fill", "filled"),
)


async def _stored_at(js: JetStreamContext, stream: str, subject: str) -> list[tuple[int, bytes]]:
    """(store time ns, payload) of every message of the stream under the subject filter."""
    out: list[tuple[int, bytes]] = []
    sub = await js.subscribe(subject, stream=stream, ordered_consumer=True, deliver_policy=api.DeliverPolicy.ALL)
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=1.0)
            except nats.errors.TimeoutError:
                return out
            out.append((int(msg.metadata.timestamp.timestamp() * 1e9), msg.data))
    finally:
        await sub.unsubscribe()


async def _stage_lags(account: str, submitted_ns: dict[str, int]) -> dict[str, tuple[float, float]]:
    """Per-stage lags of the orders submitted (wall clock at submit), from the store times of their first ORDERS
    event, first EXEC report, first FILLS message and first ORDERS fill event."""
    nc = await nats.connect(infra_url("nats", "nats"))
    js = nc.jetstream()
    at: dict[str, dict[str, int]] = {"submit": submitted_ns, "accepted": {}, "exec": {}, "fill": {}, "filled": {}}
    try:
        for ts, data in await _stored_at(js, "ORDERS", f"orders.{account}.>"):
            event = order_events_pb2.OrderEvent.FromString(data)
            at["accepted"].setdefault(event.order_id, ts)
            if event.WhichOneof("event") == "filled":
                at["filled"].setdefault(event.order_id, ts)
        for ts, data in await _stored_at(js, "EXEC", f"exec.*.{account}"):
            at["exec"].setdefault(exec_events_pb2.ExecutionReport.FromString(data).order_id, ts)
        for ts, data in await _stored_at(js, "FILLS", f"fills.{account}.>"):
            at["fill"].setdefault(fill_pb2.Fill.FromString(data).order_id, ts)
    finally:
        await nc.close()
    lags = {}
    for name, start, end in STAGES:
        ms = [(at[end][o] - t) / 1e6 for o, t in at[start].items() if o in submitted_ns and o in at[end]]
        if ms:
            lags[name] = (round(float(np.percentile(ms, 50)), 2), round(float(np.percentile(ms, 99)), 2))
    return lags


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
    sent_wall: dict[str, int] = {}
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
        started, wall = time.perf_counter_ns(), time.time_ns()
        order = await admin.submit(SYMBOL, buy if i % 2 == 0 else sell, client_order_id=f"fl-{uuid.uuid4().hex}")
        sent_at.setdefault(order.order_id, started)
        sent_wall.setdefault(order.order_id, wall)

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
        stages=await _stage_lags(admin.account, sent_wall),
    )


# The streams of the order path; every live consumer of them (one with a pull request waiting, or messages
# unacknowledged) must have caught up before the next cell.
PIPELINE_STREAMS = ("ORDERS", "EXEC", "FILLS", "POSITIONS", "PNL", "EXEQ", "RISK")


async def _consumers_behind(js: JetStreamContext) -> list[str]:
    behind = []
    for stream in PIPELINE_STREAMS:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            for info in await js.consumers_info(stream):
                live = (info.num_waiting or 0) > 0 or (info.num_ack_pending or 0) > 0
                if live and ((info.num_pending or 0) > 0 or (info.num_ack_pending or 0) > 0):
                    behind.append(f"{stream}/{info.name}")
    return behind


async def _drain(account: str, limit_s: float = 180) -> float:
    """Wait until the account has no open order left (every IOC expired or filled downstream) and every live
    consumer of the order path's streams caught up (positions, PnL, risk state, the QuestDB writer): the next cell
    then starts on an idle pipeline. Returns the seconds it took (the backlog the previous cell left)."""
    client = await TraderClient.login("admin", account)
    nc = await nats.connect(infra_url("nats", "nats"), name="bench-order-entry-drain")
    started = time.monotonic()
    try:
        while time.monotonic() - started < limit_s:
            page = await client.oms.ListOrders(
                oms_pb2.ListOrdersRequest(account_id=account, open_only=True, page_size=1),
                metadata=client.auth,
                timeout=10,
            )
            if not page.orders and not await _consumers_behind(nc.jetstream()):
                break
            await asyncio.sleep(0.5)
        return round(time.monotonic() - started, 1)
    finally:
        await nc.close()
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
    columns = ("rpc", "rate (req/s)", "requests", "ok", "not ok", "throughput (req/s)", "p50 ms", "p99 ms", "max ms")
    for column in columns:
        table.add_column(column, justify="right")
    for r in acks:
        table.add_row(
            r.path,
            r.rate,
            str(r.requests),
            str(r.ok),
            " ".join(f"{code} {n}" for code, n in r.not_ok.items()) or "-",
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
    stages_table = Table(title="where submit -> fill goes: p50 / p99 ms between JetStream store times")
    stages_table.add_column("orders/s", justify="right")
    for name, _, _ in STAGES:
        stages_table.add_column(name, justify="right")
    for fill in fill_results:
        cells = [
            f"{fill.stages[n][0]:.1f} / {fill.stages[n][1]:.1f}" if n in fill.stages else "-" for n, _, _ in STAGES
        ]
        stages_table.add_row(str(fill.rate), *cells)
    console.print(stages_table)
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
