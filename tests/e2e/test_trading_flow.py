"""The trading core through the edge, on the whole mesh: a trader submits, amends and cancels orders, sees acks,
fills, positions and PnL stream back; retries never double an order; traders cannot touch each other's orders;
the kill switch stops an account."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import grpc
import pytest
from trade.oms.v1 import oms_pb2
from trade.risk.v1 import events_pb2 as risk_events_pb2
from trade.risk.v1 import risk_pb2, risk_pb2_grpc
from trade.type.v1 import decimal_pb2, errors_pb2, order_pb2

from tests.support.edge import EDGE, bearer, token_for
from tests.support.trading import TraderClient, far_limit, marketable_limit

pytestmark = pytest.mark.usefixtures("mesh")

ACCOUNT = "ACC-TRADER-1"
OTHER_ACCOUNT = "ACC-TRADER-2"
SYMBOL = "BTCUSDT"
QTY = "0.001"


@pytest.fixture
async def trader() -> AsyncIterator[TraderClient]:
    client = await TraderClient.login("trader", ACCOUNT)
    yield client
    await client.close()


@pytest.fixture
async def trader2() -> AsyncIterator[TraderClient]:
    client = await TraderClient.login("trader2", OTHER_ACCOUNT)
    yield client
    await client.close()


async def test_a_marketable_order_is_acknowledged_filled_and_moves_position_and_pnl(trader: TraderClient) -> None:
    before = await trader.position(SYMBOL)
    fills = trader.watch_fills([SYMBOL])
    try:
        spec = await marketable_limit(trader, SYMBOL, order_pb2.SIDE_BUY, QTY)
        order = await trader.submit(SYMBOL, spec)
        assert order.status in (order_pb2.ORDER_STATUS_PENDING_NEW, order_pb2.ORDER_STATUS_NEW)
        assert order.order_id and order.account_id == ACCOUNT
        got = await fills.until(lambda f: f.order_id == order.order_id, within_s=15)
        assert Decimal(got.quantity.value) == Decimal(QTY) and got.side == order_pb2.SIDE_BUY
        assert Decimal(got.fee.value) >= 0 and got.fill_id
    finally:
        fills.cancel()
    final = await trader.wait_order(order.order_id, {order_pb2.ORDER_STATUS_FILLED}, within_s=10)
    assert Decimal(final.cum_qty.value) == Decimal(QTY) and Decimal(final.leaves_qty.value) == 0
    with pytest.raises(grpc.aio.AioRpcError) as late:
        await trader.oms.CancelOrder(
            oms_pb2.CancelOrderRequest(account_id=ACCOUNT, order_id=order.order_id), metadata=trader.auth, timeout=5
        )
    assert late.value.code() == grpc.StatusCode.FAILED_PRECONDITION  # too late: already filled
    after = await trader.wait_position(SYMBOL, lambda q: q == before + Decimal(QTY), within_s=10)
    assert after == before + Decimal(QTY)
    pnl = await trader.pnl(SYMBOL)
    assert pnl.by_symbol and pnl.by_symbol[0].symbol == SYMBOL
    # flatten again, so repeated runs keep the demo account inside its position limits
    flat = await trader.submit(SYMBOL, await marketable_limit(trader, SYMBOL, order_pb2.SIDE_SELL, QTY))
    await trader.wait_order(flat.order_id, {order_pb2.ORDER_STATUS_FILLED}, within_s=15)


async def test_a_resting_order_is_amended_then_canceled(trader: TraderClient) -> None:
    spec = await far_limit(trader, SYMBOL, order_pb2.SIDE_BUY, QTY)
    order = await trader.submit(SYMBOL, spec)
    live = await trader.wait_order(order.order_id, {order_pb2.ORDER_STATUS_NEW}, within_s=10)
    new_price = str(Decimal(live.spec.limit_price.value) - Decimal("1"))
    amended = await trader.oms.AmendOrder(
        oms_pb2.AmendOrderRequest(
            account_id=ACCOUNT,
            symbol=SYMBOL,
            order_id=order.order_id,
            new_limit_price=decimal_pb2.Decimal(value=new_price),
        ),
        metadata=trader.auth,
        timeout=5,
    )
    assert amended.order.order_id == order.order_id
    replaced = await trader.wait_order(
        order.order_id,
        {order_pb2.ORDER_STATUS_NEW},
        within_s=10,
        extra=lambda o: Decimal(o.spec.limit_price.value) == Decimal(new_price),
    )
    assert Decimal(replaced.spec.limit_price.value) == Decimal(new_price)
    await trader.oms.CancelOrder(
        oms_pb2.CancelOrderRequest(account_id=ACCOUNT, order_id=order.order_id), metadata=trader.auth, timeout=5
    )
    canceled = await trader.wait_order(order.order_id, {order_pb2.ORDER_STATUS_CANCELED}, within_s=10)
    assert Decimal(canceled.cum_qty.value) == 0
    again = await trader.oms.CancelOrder(  # a retried cancel is harmless: the order stays canceled
        oms_pb2.CancelOrderRequest(account_id=ACCOUNT, order_id=order.order_id), metadata=trader.auth, timeout=5
    )
    assert again.order.status == order_pb2.ORDER_STATUS_CANCELED


async def test_a_submit_retried_after_a_deadline_returns_the_original_order(trader: TraderClient) -> None:
    spec = await far_limit(trader, SYMBOL, order_pb2.SIDE_BUY, QTY)
    client_ids = [f"e2e-retry-{uuid.uuid4().hex[:12]}" for _ in range(10)]
    for cid in client_ids:
        try:  # a deadline too short to answer in: the client cannot know whether the order was created
            await trader.submit(SYMBOL, spec, client_order_id=cid, deadline_s=0.001)
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    first = [await trader.submit_full(SYMBOL, spec, client_order_id=cid) for cid in client_ids]
    again = [await trader.submit_full(SYMBOL, spec, client_order_id=cid) for cid in client_ids]
    assert len({r.order.order_id for r in first}) == len(client_ids)
    assert [r.order.order_id for r in again] == [r.order.order_id for r in first]
    assert all(r.replayed for r in again)
    listed = await trader.list_orders(SYMBOL)
    created = [o for o in listed if o.client_order_id in client_ids]
    assert sorted(o.client_order_id for o in created) == sorted(client_ids)  # N of N, duplicates 0
    for response in first:
        await trader.cancel_quietly(response.order.order_id)


async def test_a_trader_cannot_act_on_another_traders_account_or_orders(
    trader: TraderClient, trader2: TraderClient
) -> None:
    order = await trader.submit(SYMBOL, await far_limit(trader, SYMBOL, order_pb2.SIDE_BUY, QTY))
    try:
        with pytest.raises(grpc.aio.AioRpcError) as by_account:
            await trader2.oms.CancelOrder(
                oms_pb2.CancelOrderRequest(account_id=ACCOUNT, order_id=order.order_id),
                metadata=trader2.auth,
                timeout=5,
            )
        assert by_account.value.code() == grpc.StatusCode.PERMISSION_DENIED  # the edge (OPA): not their account
        with pytest.raises(grpc.aio.AioRpcError) as by_id:
            await trader2.oms.CancelOrder(
                oms_pb2.CancelOrderRequest(account_id=OTHER_ACCOUNT, order_id=order.order_id),
                metadata=trader2.auth,
                timeout=5,
            )
        assert by_id.value.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED)
        with pytest.raises(grpc.aio.AioRpcError) as submit_other:
            await trader2.submit(SYMBOL, await far_limit(trader2, SYMBOL, order_pb2.SIDE_BUY, QTY), account=ACCOUNT)
        assert submit_other.value.code() == grpc.StatusCode.PERMISSION_DENIED
        still = await trader.get_order(order.order_id)
        assert still.status not in (order_pb2.ORDER_STATUS_CANCELED, order_pb2.ORDER_STATUS_PENDING_CANCEL)
    finally:
        await trader.cancel_quietly(order.order_id)


async def test_the_account_kill_switch_cancels_open_orders_and_rejects_new_ones(trader2: TraderClient) -> None:
    risk_token = await asyncio.to_thread(token_for_edge, "risk")
    async with grpc.aio.insecure_channel(EDGE) as channel:
        risk = risk_pb2_grpc.RiskServiceStub(channel)
        auth = bearer(risk_token)
        resting = await trader2.submit(SYMBOL, await far_limit(trader2, SYMBOL, order_pb2.SIDE_BUY, QTY))
        await trader2.wait_order(resting.order_id, {order_pb2.ORDER_STATUS_NEW}, within_s=10)
        await risk.EngageKillSwitch(
            risk_pb2.EngageKillSwitchRequest(
                account_id=OTHER_ACCOUNT, scope=risk_events_pb2.KILL_SWITCH_SCOPE_ACCOUNT, reason="e2e kill switch test"
            ),
            metadata=auth,
            timeout=5,
        )
        try:
            canceled = await trader2.wait_order(resting.order_id, {order_pb2.ORDER_STATUS_CANCELED}, within_s=10)
            assert canceled.status == order_pb2.ORDER_STATUS_CANCELED
            spec = await far_limit(trader2, SYMBOL, order_pb2.SIDE_BUY, QTY)
            refused = await trader2.submit_full(SYMBOL, spec)
            assert refused.order.status == order_pb2.ORDER_STATUS_REJECTED
            assert "KILL_SWITCH" in errors_pb2.ErrorReason.Name(refused.order.reason)
        finally:
            await risk.ReleaseKillSwitch(
                risk_pb2.ReleaseKillSwitchRequest(
                    account_id=OTHER_ACCOUNT, scope=risk_events_pb2.KILL_SWITCH_SCOPE_ACCOUNT, reason="e2e test done"
                ),
                metadata=auth,
                timeout=5,
            )


def token_for_edge(username: str) -> str:
    with grpc.insecure_channel(EDGE) as channel:
        return token_for(channel, username)
