"""Faults in the middle of an order burst through the edge: kill -9 of the OMS or the live-gateway, a NATS
restart. Clients retry with the same client order ids (the contract); afterwards every order exists exactly once,
every fill exactly once, order quantities agree with their fills and positions agree with a recomputation from the
fill log."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import grpc
import nats
import pytest
from trade.live_gateway.v1 import events_pb2 as exec_pb2
from trade.oms.v1 import oms_pb2
from trade.pnl.v1 import pnl_pb2, pnl_pb2_grpc
from trade.ptrc.v1 import ptrc_pb2, ptrc_pb2_grpc
from trade.type.v1 import fill_pb2, order_pb2

from mesh import control
from services.runtime.settings import infra_url
from tests.support.mesh import wait_feed_flowing
from tests.support.trading import TraderClient, marketable_limit

pytestmark = pytest.mark.usefixtures("mesh")

SYMBOL = "SOLUSDT"
QTY = "0.1"  # about 15 USDT: above the 5 USDT minimum notional
ORDERS = 40
TERMINAL = {
    order_pb2.ORDER_STATUS_FILLED,
    order_pb2.ORDER_STATUS_CANCELED,
    order_pb2.ORDER_STATUS_EXPIRED,
    order_pb2.ORDER_STATUS_REJECTED,
}


@pytest.fixture
async def admin() -> AsyncIterator[TraderClient]:
    client = await TraderClient.login("admin", f"ACC-FAULT-{uuid.uuid4().hex[:8].upper()}")
    yield client
    await client.close()


async def _submit_until_answered(client: TraderClient, spec: order_pb2.OrderSpec, cid: str) -> order_pb2.Order:
    deadline = time.monotonic() + 60
    while True:
        try:
            return await client.submit(SYMBOL, spec, client_order_id=cid, deadline_s=3)
        except grpc.aio.AioRpcError as error:
            retryable = error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
            if not retryable or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def _burst(client: TraderClient, fault: Callable[[], None]) -> list[str]:
    buy = await marketable_limit(client, SYMBOL, order_pb2.SIDE_BUY, QTY)
    sell = await marketable_limit(client, SYMBOL, order_pb2.SIDE_SELL, QTY)
    cids = [f"fault-{i:03d}-{uuid.uuid4().hex[:8]}" for i in range(ORDERS)]
    sent = 0

    async def one(i: int) -> order_pb2.Order:
        nonlocal sent
        sent += 1
        return await _submit_until_answered(client, buy if i % 2 == 0 else sell, cids[i])

    first = [asyncio.create_task(one(i)) for i in range(ORDERS // 2)]
    await asyncio.sleep(0.05)
    await asyncio.to_thread(fault)
    rest = [asyncio.create_task(one(i)) for i in range(ORDERS // 2, ORDERS)]
    answered = await asyncio.gather(*first, *rest)
    assert sent == ORDERS and len(answered) == ORDERS
    return cids


async def _all_fills(client: TraderClient) -> list[fill_pb2.Fill]:
    out: list[fill_pb2.Fill] = []
    token = ""
    for _ in range(100):
        page = await client.oms.ListFills(
            oms_pb2.ListFillsRequest(account_id=client.account, page_size=500, page_token=token),
            metadata=client.auth,
            timeout=10,
        )
        out.extend(page.fills)
        token = page.next_page_token
        if not token:
            return out
    raise AssertionError("ListFills never ended")


async def _settled_orders(client: TraderClient, cids: list[str]) -> list[order_pb2.Order]:
    deadline = time.monotonic() + 45
    while True:
        orders = [o for o in await client.list_orders(SYMBOL) if o.client_order_id in set(cids)]
        if len(orders) >= len(cids) and all(o.status in TERMINAL for o in orders):
            return orders
        if time.monotonic() > deadline:
            open_ = [order_pb2.OrderStatus.Name(o.status) for o in orders if o.status not in TERMINAL]
            raise AssertionError(f"{len(orders)}/{len(cids)} orders, still open: {open_}")
        await asyncio.sleep(0.25)


async def _check_books(client: TraderClient, cids: list[str]) -> None:
    orders = await _settled_orders(client, cids)
    assert sorted(o.client_order_id for o in orders) == sorted(cids)  # created N of N, duplicates 0
    fills = await _all_fills(client)
    assert len({f.fill_id for f in fills}) == len(fills)  # no fill twice
    by_order: dict[str, Decimal] = defaultdict(Decimal)
    for f in fills:
        by_order[f.order_id] += Decimal(f.quantity.value)
    for o in orders:
        assert Decimal(o.cum_qty.value or "0") == by_order.get(o.order_id, Decimal(0)), o.client_order_id
    assert sum(by_order.values()) > 0, "the burst produced no fill at all"
    expected = sum(
        (Decimal(f.quantity.value) if f.side == order_pb2.SIDE_BUY else -Decimal(f.quantity.value) for f in fills),
        Decimal(0),
    )
    ptrc = ptrc_pb2_grpc.PtrcServiceStub(client.channel)
    # positions converge on the fill log: a fill whose ack was lost in a fault comes back within ptrc's ack_wait
    deadline = time.monotonic() + 30
    while True:
        report = await ptrc.Reconcile(
            ptrc_pb2.ReconcileRequest(account_id=client.account), metadata=client.auth, timeout=20
        )
        position = await client.position(SYMBOL)
        # all three: fills missing from ptrc can net to zero (buys and sells of equal size alternate)
        converged = not report.differences and position == expected and report.fills_replayed == len(fills)
        if converged or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert position == expected
    assert list(report.differences) == []
    assert report.fills_replayed == len(fills)
    await _check_pnl_matches_positions(client)


async def _check_pnl_matches_positions(client: TraderClient) -> None:
    """pnl nets the same fills per (account, symbol, strategy), in log order like ptrc: with one strategy its
    realized PnL and fees are ptrc's, to the last decimal."""
    ptrc = ptrc_pb2_grpc.PtrcServiceStub(client.channel)
    request = ptrc_pb2.GetPositionRequest(account_id=client.account, symbol=SYMBOL)
    stored = (await ptrc.GetPosition(request, metadata=client.auth, timeout=10)).position
    want = (Decimal(stored.realized_pnl.value or "0"), Decimal(stored.fees.value or "0"))
    pnl = pnl_pb2_grpc.PnlServiceStub(client.channel)
    deadline = time.monotonic() + 30
    while True:
        total = (
            await pnl.GetPnl(
                pnl_pb2.GetPnlRequest(account_id=client.account, symbol=SYMBOL), metadata=client.auth, timeout=10
            )
        ).total
        got = (Decimal(total.realized_pnl.value or "0"), Decimal(total.fees.value or "0"))
        if got == want or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert got == want


async def test_kill_9_of_the_oms_mid_burst_loses_and_doubles_nothing(admin: TraderClient) -> None:
    def kill_oms() -> None:
        os.kill(control.pid("oms"), signal.SIGKILL)

    cids = await _burst(admin, kill_oms)
    await asyncio.to_thread(_wait_ready, "oms")
    await _check_books(admin, cids)


async def _stored(stream: str, subject: str) -> list[bytes]:
    nc = await nats.connect(infra_url("nats", "nats"))
    try:
        sub = await nc.jetstream().subscribe(subject, stream=stream, ordered_consumer=True)
        out: list[bytes] = []
        while True:
            try:
                out.append((await sub.next_msg(timeout=1.0)).data)
            except nats.errors.TimeoutError:
                return out
    finally:
        await nc.close()


async def test_kill_9_of_the_live_gateway_mid_burst_stores_every_fill_and_report_once(admin: TraderClient) -> None:
    def kill_gateway() -> None:
        os.kill(control.pid("live_gateway"), signal.SIGKILL)

    cids = await _burst(admin, kill_gateway)
    await asyncio.to_thread(_wait_ready, "live_gateway")
    await _check_books(admin, cids)
    # The restarted gateway replays from its last resume point: JetStream must have kept one copy of each.
    fills = [fill_pb2.Fill.FromString(d) for d in await _stored("FILLS", f"fills.{admin.account}.>")]
    assert len({f.fill_id for f in fills}) == len(fills)
    assert {f.fill_id for f in fills} == {f.fill_id for f in await _all_fills(admin)}
    reports = [exec_pb2.ExecutionReport.FromString(d) for d in await _stored("EXEC", f"exec.*.{admin.account}")]
    assert len({r.report_id for r in reports}) == len(reports)


async def test_a_nats_restart_mid_burst_loses_and_doubles_nothing(admin: TraderClient) -> None:
    try:
        cids = await _burst(admin, lambda: control.restart("nats"))
        await _check_books(admin, cids)
    finally:
        await asyncio.to_thread(wait_feed_flowing)


def _wait_ready(name: str, limit_s: float = 60) -> None:
    deadline = time.monotonic() + limit_s
    while not control.ready(name).ok:
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} not ready again within {limit_s}s")
        time.sleep(0.2)
