"""PRISM member order entry over gRPC: a prism server composed in-process (test seed, feed publishing off, a small
order latency, real participants trading) takes orders, streams their executions live and from history, cancels,
amends, answers retries idempotently and refuses bad orders with rich errors."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import grpc
import pytest
from trade.prism.v1 import execution_pb2, prism_pb2, prism_pb2_grpc
from trade.type.v1 import decimal_pb2, fill_pb2, order_pb2

from services.prism.bootstrap import Prism, compose
from services.prism.settings import PrismSettings
from services.runtime.server import RunningServer, start_server
from services.runtime.status import bad_request, error_info, status_from_trailers

pytestmark = pytest.mark.usefixtures("mesh")
TIMEOUT = 5.0
Stream = grpc.aio.UnaryStreamCall[prism_pb2.StreamExecutionsRequest, prism_pb2.StreamExecutionsResponse]


class Venue:
    def __init__(self, prism: Prism, server: RunningServer, stub: prism_pb2_grpc.PrismServiceAsyncStub) -> None:
        self.prism = prism
        self.server = server
        self.stub = stub


@pytest.fixture(scope="module")
async def venue() -> AsyncIterator[Venue]:
    settings = PrismSettings(
        port=0,
        seed=42,
        feed_enabled=False,
        message_rate=200,
        warmup_steps=1500,
        order_latency_ms=2,
        heartbeat_interval_s=0.3,
        log_json=False,
    )
    prism = await compose(settings)
    server = await start_server(settings, prism.registration)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield Venue(prism, server, prism_pb2_grpc.PrismServiceStub(channel))
    finally:
        await channel.close()
        await server.stop()


def account() -> str:
    return f"T{uuid.uuid4().hex[:12]}"


def dec(value: Decimal | str) -> decimal_pb2.Decimal:
    return decimal_pb2.Decimal(value=format(Decimal(value), "f"))


async def best(venue: Venue, symbol: str = "BTCUSDT") -> tuple[Decimal, Decimal]:
    book = (await venue.stub.GetBook(prism_pb2.GetBookRequest(symbol=symbol, depth=1), timeout=TIMEOUT)).book
    return Decimal(book.bids[0].price.value), Decimal(book.asks[0].price.value)


def limit(side: order_pb2.Side.ValueType, qty: str, price: Decimal | str) -> order_pb2.OrderSpec:
    return order_pb2.OrderSpec(
        side=side, order_type=order_pb2.ORDER_TYPE_LIMIT, quantity=dec(qty), limit_price=dec(price)
    )


async def place(
    venue: Venue, acct: str, coid: str, spec: order_pb2.OrderSpec, symbol: str = "BTCUSDT"
) -> prism_pb2.PlaceOrderResponse:
    request = prism_pb2.PlaceOrderRequest(account_id=acct, symbol=symbol, client_order_id=coid, spec=spec)
    return await venue.stub.PlaceOrder(request, timeout=TIMEOUT)


async def next_execution(stream: Stream) -> execution_pb2.PrismExecution:
    """The stream's next execution (heartbeats skipped), within the timeout."""

    async def read() -> execution_pb2.PrismExecution:
        while True:
            msg = await stream.read()
            assert msg is not grpc.aio.EOF, "stream ended"
            assert isinstance(msg, prism_pb2.StreamExecutionsResponse)
            if msg.WhichOneof("payload") == "execution":
                return msg.execution

    return await asyncio.wait_for(read(), TIMEOUT)


async def test_marketable_order_fills_and_its_executions_replay_then_stream_live(venue: Venue) -> None:
    acct = account()
    _, ask = await best(venue)
    response = await place(
        venue, acct, "buy-1", limit(order_pb2.SIDE_BUY, "0.001", (ask * Decimal("1.01")).quantize(Decimal("0.01")))
    )
    assert response.status == order_pb2.ORDER_STATUS_FILLED and not response.replayed
    kinds = [e.type for e in response.executions]
    assert kinds[0] == execution_pb2.PRISM_EXECUTION_TYPE_NEW and kinds[-1] == execution_pb2.PRISM_EXECUTION_TYPE_TRADE
    trade = response.executions[-1]
    assert trade.liquidity == fill_pb2.LIQUIDITY_TAKER and trade.fee_currency == "USDT" and Decimal(trade.fee.value) > 0
    assert Decimal(trade.cum_qty.value) == Decimal("0.001") and Decimal(trade.leaves_qty.value) == 0
    assert trade.trade_id and trade.last_price.value and trade.client_order_id == "buy-1"

    stream = venue.stub.StreamExecutions(prism_pb2.StreamExecutionsRequest(account_id=acct, after_exec_sequence=1))
    try:
        replayed = [await next_execution(stream) for _ in response.executions]
        assert [e.exec_sequence for e in replayed] == [e.exec_sequence for e in response.executions]
        _, ask = await best(venue)
        live = await place(
            venue, acct, "buy-2", limit(order_pb2.SIDE_BUY, "0.001", (ask * Decimal("1.01")).quantize(Decimal("0.01")))
        )
        streamed = [await next_execution(stream) for _ in live.executions]
        assert [e.exec_id for e in streamed] == [e.exec_id for e in live.executions]
        seqs = [e.exec_sequence for e in replayed + streamed]
        assert seqs == sorted(set(seqs))
    finally:
        stream.cancel()

    resumed = venue.stub.StreamExecutions(
        prism_pb2.StreamExecutionsRequest(account_id=acct, after_exec_sequence=replayed[-1].exec_sequence)
    )
    try:
        assert (await next_execution(resumed)).venue_order_id == live.venue_order_id  # nothing before the resume point
    finally:
        resumed.cancel()


async def test_resting_order_cancel_amend_and_retry(venue: Venue) -> None:
    acct = account()
    bid, _ = await best(venue)
    far = (bid / 2).quantize(Decimal("0.01"))
    spec = limit(order_pb2.SIDE_BUY, "0.002", far)
    order = await place(venue, acct, "rest-1", spec)
    assert order.status == order_pb2.ORDER_STATUS_NEW and order.venue_order_id

    retry = await place(venue, acct, "rest-1", spec)
    assert retry.replayed and retry.venue_order_id == order.venue_order_id

    amend = prism_pb2.AmendOrderRequest(
        account_id=acct, symbol="BTCUSDT", venue_order_id=order.venue_order_id, new_quantity=dec("0.001")
    )
    (replaced,) = (await venue.stub.AmendOrder(amend, timeout=TIMEOUT)).executions
    assert replaced.type == execution_pb2.PRISM_EXECUTION_TYPE_REPLACED and Decimal(
        replaced.leaves_qty.value
    ) == Decimal("0.001")
    amend = prism_pb2.AmendOrderRequest(
        account_id=acct, symbol="BTCUSDT", venue_order_id=order.venue_order_id, new_limit_price=dec(far - 1)
    )
    (moved,) = (await venue.stub.AmendOrder(amend, timeout=TIMEOUT)).executions
    assert moved.type == execution_pb2.PRISM_EXECUTION_TYPE_REPLACED and "priority=lost" in moved.text

    cancel = prism_pb2.CancelOrderRequest(account_id=acct, client_order_id="rest-1")
    canceled = (await venue.stub.CancelOrder(cancel, timeout=TIMEOUT)).execution
    assert canceled.type == execution_pb2.PRISM_EXECUTION_TYPE_CANCELED
    assert canceled.order_status == order_pb2.ORDER_STATUS_CANCELED

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await venue.stub.CancelOrder(cancel, timeout=TIMEOUT)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    status = status_from_trailers(err.value.trailing_metadata())
    info = error_info(status) if status is not None else None
    assert info is not None and info.reason == "TOO_LATE_TO_CANCEL"

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await venue.stub.AmendOrder(amend, timeout=TIMEOUT)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await venue.stub.CancelOrder(
            prism_pb2.CancelOrderRequest(account_id=acct, venue_order_id="P0"), timeout=TIMEOUT
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_bad_orders_are_refused_with_field_violations_and_unknown_symbols_not_found(venue: Venue) -> None:
    acct = account()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await place(venue, acct, "bad-1", limit(order_pb2.SIDE_BUY, "0.001", "60000.001"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = status_from_trailers(err.value.trailing_metadata())
    assert status is not None
    info, bad = error_info(status), bad_request(status)
    assert info is not None and info.reason == "INVALID_TICK_SIZE"
    assert bad is not None and [v.field for v in bad.field_violations] == ["spec.limit_price"]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await place(venue, acct, "bad-2", limit(order_pb2.SIDE_BUY, "0.001", "100"), symbol="NOPEUSDT")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_idle_stream_heartbeats_and_a_closed_stream_releases_its_queue(venue: Venue) -> None:
    entry = venue.prism.entry
    before = entry.subscriber_count
    stream = venue.stub.StreamExecutions(prism_pb2.StreamExecutionsRequest(account_id=account()))
    await asyncio.wait_for(stream.initial_metadata(), TIMEOUT)  # sent once the subscription is registered
    assert entry.subscriber_count == before + 1
    msg = await asyncio.wait_for(stream.read(), TIMEOUT)
    assert isinstance(msg, prism_pb2.StreamExecutionsResponse) and msg.WhichOneof("payload") == "heartbeat"
    assert msg.heartbeat.server_time_ns > 0 and entry.subscriber_count == before + 1
    stream.cancel()
    for _ in range(100):
        if entry.subscriber_count == before:
            break
        await asyncio.sleep(0.02)
    assert entry.subscriber_count == before
