"""live-gateway against a fake PRISM gRPC server and the real NATS: reports and fills land in EXEC/FILLS with their
msg ids, a restart resumes the execution stream from the last published sequence with no lost or doubled fill, and
rejections are published and returned."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import grpc
import pytest
from trade.live_gateway.v1 import events_pb2, live_gateway_pb2
from trade.prism.v1 import execution_pb2, prism_pb2, prism_pb2_grpc
from trade.type.v1 import decimal_pb2, errors_pb2, fill_pb2, order_pb2, venue_pb2

from services.live_gateway.settings import LiveGatewaySettings
from services.runtime.bus import Bus
from services.runtime.status import error_info, status_from_trailers
from tests.support.live_gateway import read_all, running_gateway, wait_count

pytestmark = pytest.mark.usefixtures("mesh")

Context = grpc.aio.ServicerContext[Any, Any]
PX = execution_pb2


def dec(value: str | Decimal) -> decimal_pb2.Decimal:
    return decimal_pb2.Decimal(value=str(value))


class FakePrism(prism_pb2_grpc.PrismServiceServicer):
    """Just enough of PRISM's order entry: engine-wide exec sequence, per-account history and live streams."""

    def __init__(self) -> None:
        # Trade and order ids are unique at a venue: unique per fake too, as fill ids (and JetStream dedup) rely on it.
        self.run = uuid.uuid4().hex[:8]
        self.seq = 0
        self.history: defaultdict[str, list[PX.PrismExecution]] = defaultdict(list)
        self.live: defaultdict[str, set[asyncio.Queue[PX.PrismExecution]]] = defaultdict(set)
        self.orders: dict[tuple[str, str], tuple[str, order_pb2.OrderSpec, Decimal]] = {}
        self.stream_requests: list[tuple[str, int]] = []
        self.done: set[tuple[str, str]] = set()
        # Replay this many events before after_exec_sequence too (an at-least-once venue): the gateway must dedup.
        self.replay_slack = 0

    def emit(self, account: str, **fields: Any) -> PX.PrismExecution:
        self.seq += 1
        pe = PX.PrismExecution(exec_sequence=self.seq, exec_id=f"X{self.seq}", account_id=account, **fields)
        self.history[account].append(pe)
        for queue in self.live[account]:
            queue.put_nowait(pe)
        return pe

    def fill(self, account: str, client_order_id: str, qty: str, price: str = "100") -> PX.PrismExecution:
        vid, spec, cum = self.orders[(account, client_order_id)]
        cum += Decimal(qty)
        total = Decimal(spec.quantity.value)
        self.orders[(account, client_order_id)] = (vid, spec, cum)
        return self.emit(
            account,
            symbol="BTCUSDT",
            venue_order_id=vid,
            client_order_id=client_order_id,
            type=PX.PRISM_EXECUTION_TYPE_TRADE,
            order_status=order_pb2.ORDER_STATUS_FILLED if cum == total else order_pb2.ORDER_STATUS_PARTIALLY_FILLED,
            side=spec.side,
            last_price=dec(price),
            last_quantity=dec(qty),
            cum_qty=dec(cum),
            leaves_qty=dec(total - cum),
            fee=dec("0.01"),
            fee_currency="USDT",
            liquidity=fill_pb2.LIQUIDITY_MAKER,
            trade_id=f"T{self.run}-{self.seq + 1}",
            event_time_ns=self.seq,
        )

    async def PlaceOrder(self, request: prism_pb2.PlaceOrderRequest, context: Context) -> prism_pb2.PlaceOrderResponse:
        if request.symbol == "BADSYM":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "unknown symbol BADSYM")
        key = (request.account_id, request.client_order_id)
        if key in self.orders:
            return prism_pb2.PlaceOrderResponse(
                venue_order_id=self.orders[key][0], status=order_pb2.ORDER_STATUS_NEW, replayed=True
            )
        vid = f"P{self.run}-{len(self.orders) + 1}"
        self.orders[key] = (vid, request.spec, Decimal(0))
        common: dict[str, Any] = {
            "symbol": request.symbol,
            "venue_order_id": vid,
            "client_order_id": request.client_order_id,
            "side": request.spec.side,
        }
        qty = Decimal(request.spec.quantity.value)
        if qty > 1000:
            pe = self.emit(
                request.account_id,
                type=PX.PRISM_EXECUTION_TYPE_REJECTED,
                order_status=order_pb2.ORDER_STATUS_REJECTED,
                reason=errors_pb2.ERROR_REASON_VENUE_REJECTED,
                text="quantity above the member's limit",
                **common,
            )
            return prism_pb2.PlaceOrderResponse(
                venue_order_id=vid, status=order_pb2.ORDER_STATUS_REJECTED, executions=[pe]
            )
        executions = [
            self.emit(
                request.account_id,
                type=PX.PRISM_EXECUTION_TYPE_NEW,
                order_status=order_pb2.ORDER_STATUS_NEW,
                cum_qty=dec("0"),
                leaves_qty=dec(qty),
                **common,
            )
        ]
        status = order_pb2.ORDER_STATUS_NEW
        if request.spec.order_type == order_pb2.ORDER_TYPE_MARKET:
            executions.append(self.fill(request.account_id, request.client_order_id, str(qty), "101.5"))
            status = order_pb2.ORDER_STATUS_FILLED
        return prism_pb2.PlaceOrderResponse(venue_order_id=vid, status=status, executions=executions)

    async def StreamExecutions(
        self, request: prism_pb2.StreamExecutionsRequest, context: Context
    ) -> AsyncIterator[prism_pb2.StreamExecutionsResponse]:
        self.stream_requests.append((request.account_id, request.after_exec_sequence))
        queue: asyncio.Queue[PX.PrismExecution] = asyncio.Queue()
        self.live[request.account_id].add(queue)
        try:
            if request.after_exec_sequence:
                start = request.after_exec_sequence - self.replay_slack
                for pe in list(self.history[request.account_id]):
                    if pe.exec_sequence > start:
                        yield prism_pb2.StreamExecutionsResponse(execution=pe)
            while True:
                yield prism_pb2.StreamExecutionsResponse(execution=await queue.get())
        finally:
            self.live[request.account_id].discard(queue)

    async def CancelOrder(
        self, request: prism_pb2.CancelOrderRequest, context: Context
    ) -> prism_pb2.CancelOrderResponse:
        key = next(k for k, v in self.orders.items() if v[0] == request.venue_order_id)
        vid, _, cum = self.orders[key]
        common: dict[str, Any] = {"symbol": "BTCUSDT", "venue_order_id": vid, "client_order_id": key[1]}
        if key in self.done:
            pe = self.emit(
                request.account_id,
                type=PX.PRISM_EXECUTION_TYPE_CANCEL_REJECTED,
                reason=errors_pb2.ERROR_REASON_TOO_LATE_TO_CANCEL,
                **common,
            )
        else:
            self.done.add(key)
            pe = self.emit(
                request.account_id,
                type=PX.PRISM_EXECUTION_TYPE_CANCELED,
                order_status=order_pb2.ORDER_STATUS_CANCELED,
                cum_qty=dec(cum),
                leaves_qty=dec("0"),
                **common,
            )
        return prism_pb2.CancelOrderResponse(execution=pe)

    async def AmendOrder(self, request: prism_pb2.AmendOrderRequest, context: Context) -> prism_pb2.AmendOrderResponse:
        key = next(k for k, v in self.orders.items() if v[0] == request.venue_order_id)
        vid, spec, cum = self.orders[key]
        spec = order_pb2.OrderSpec()
        spec.CopyFrom(self.orders[key][1])
        spec.quantity.CopyFrom(request.new_quantity)
        spec.limit_price.CopyFrom(request.new_limit_price)
        self.orders[key] = (vid, spec, cum)
        pe = self.emit(
            request.account_id,
            symbol=request.symbol,
            venue_order_id=vid,
            client_order_id=key[1],
            type=PX.PRISM_EXECUTION_TYPE_REPLACED,
            order_status=order_pb2.ORDER_STATUS_NEW,
            cum_qty=dec(cum),
            leaves_qty=dec(Decimal(spec.quantity.value) - cum),
        )
        return prism_pb2.AmendOrderResponse(executions=[pe])

    async def GetBook(self, request: prism_pb2.GetBookRequest, context: Context) -> prism_pb2.GetBookResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not faked")
        raise AssertionError("unreachable")

    async def ListInstruments(
        self, request: prism_pb2.ListInstrumentsRequest, context: Context
    ) -> prism_pb2.ListInstrumentsResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not faked")
        raise AssertionError("unreachable")

    async def ConfigureSimulation(
        self, request: prism_pb2.ConfigureSimulationRequest, context: Context
    ) -> prism_pb2.ConfigureSimulationResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not faked")
        raise AssertionError("unreachable")

    async def GetSimulationStatus(
        self, request: prism_pb2.GetSimulationStatusRequest, context: Context
    ) -> prism_pb2.GetSimulationStatusResponse:
        return prism_pb2.GetSimulationStatusResponse(state=prism_pb2.SIMULATION_STATE_RUNNING)


@pytest.fixture
async def prism() -> AsyncIterator[tuple[FakePrism, int]]:
    fake = FakePrism()
    server = grpc.aio.server()
    prism_pb2_grpc.add_PrismServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield fake, port
    await server.stop(0.2)


@pytest.fixture
async def bus() -> AsyncIterator[Bus]:
    b = Bus(LiveGatewaySettings().nats_url, "test-live-gateway")
    await b.connect()
    yield b
    await b.close()


def settings_for(port: int) -> LiveGatewaySettings:
    return LiveGatewaySettings(
        port=0,
        prism_target=f"127.0.0.1:{port}",
        paper_enabled=False,
        prism_probe_interval_s=0.2,
        shutdown_grace_s=0.5,
        stream_heartbeat_s=0.5,
        log_json=False,
    )


def account() -> str:
    return f"lgw-{uuid.uuid4().hex[:12]}"


def place_request(acct: str, order_id: str, order_type: str = "LIMIT", qty: str = "3") -> Any:
    spec = order_pb2.OrderSpec(side=order_pb2.SIDE_BUY, quantity=dec(qty))
    if order_type == "MARKET":
        spec.order_type = order_pb2.ORDER_TYPE_MARKET
        spec.time_in_force = order_pb2.TIME_IN_FORCE_IOC
    else:
        spec.order_type = order_pb2.ORDER_TYPE_LIMIT
        spec.limit_price.value = "100"
    return live_gateway_pb2.PlaceOrderRequest(
        account_id=acct,
        symbol="BTCUSDT",
        venue=venue_pb2.VENUE_PRISM,
        order_id=order_id,
        client_order_id=f"cli-{order_id}",
        spec=spec,
    )


async def next_item(stream: Any) -> live_gateway_pb2.StreamExecutionReportsResponse:
    item = await asyncio.wait_for(stream.read(), 5)
    assert isinstance(item, live_gateway_pb2.StreamExecutionReportsResponse)
    return item


def msg_id(msg: Any) -> str:
    return str((msg.headers or {}).get("Nats-Msg-Id"))


async def test_place_publishes_new_and_trade_reports_and_the_fill_with_their_msg_ids(
    prism: tuple[FakePrism, int], bus: Bus
) -> None:
    fake, port = prism
    acct = account()
    async with running_gateway(settings_for(port)) as (_, stub):
        stream = stub.StreamExecutionReports(live_gateway_pb2.StreamExecutionReportsRequest(account_id=acct))
        first = await next_item(stream)  # a heartbeat: the subscription is registered
        assert first.HasField("heartbeat")
        resp = await stub.PlaceOrder(place_request(acct, "ord-m1", "MARKET", "0.5"), timeout=5)
        assert resp.status == order_pb2.ORDER_STATUS_FILLED and resp.venue_order_id == f"P{fake.run}-1"

        streamed: list[events_pb2.ExecutionReport] = []
        while len(streamed) < 2:
            item = await next_item(stream)
            if item.HasField("report"):
                streamed.append(item.report)
        stream.cancel()
        assert [r.exec_type for r in streamed] == [events_pb2.EXEC_TYPE_NEW, events_pb2.EXEC_TYPE_TRADE]

        assert await wait_count(bus, "EXEC", f"exec.prism.{acct}", 2) == 2
        assert await wait_count(bus, "FILLS", f"fills.{acct}.BTCUSDT", 1) == 1
    reports_msgs = await read_all(bus, "EXEC", f"exec.prism.{acct}")
    reports = [events_pb2.ExecutionReport.FromString(m.data) for m in reports_msgs]
    assert [r.exec_type for r in reports] == [events_pb2.EXEC_TYPE_NEW, events_pb2.EXEC_TYPE_TRADE]
    assert [msg_id(m) for m in reports_msgs] == [r.report_id for r in reports]
    assert [r.report_id for r in reports] == [f"prism:{acct}:X1", f"prism:{acct}:X2"]
    trade = reports[1]
    assert (
        trade.order_id == "ord-m1"
        and trade.client_order_id == "cli-ord-m1"
        and trade.venue_order_id == resp.venue_order_id
    )
    assert trade.last_price.value == "101.5" and trade.last_quantity.value == "0.5"
    assert trade.order_status == order_pb2.ORDER_STATUS_FILLED and trade.venue_sequence == 2

    (fill_msg,) = await read_all(bus, "FILLS", f"fills.{acct}.BTCUSDT")
    fill = fill_pb2.Fill.FromString(fill_msg.data)
    assert fill.fill_id == msg_id(fill_msg) == trade.fill.fill_id == f"prism:T{fake.run}-2:P{fake.run}-1"
    assert fill.order_id == "ord-m1" and fill.client_order_id == "cli-ord-m1" and fill.account_id == acct
    assert fill.venue == venue_pb2.VENUE_PRISM and fill.fee.value == "0.01" and fill.side == order_pb2.SIDE_BUY
    # The fill was stored before the report that announces it.
    assert fill_msg.metadata.timestamp <= reports_msgs[1].metadata.timestamp


async def test_restart_resumes_from_the_last_published_sequence_without_losing_or_doubling_fills(
    prism: tuple[FakePrism, int], bus: Bus
) -> None:
    fake, port = prism
    acct = account()
    fills_subject = f"fills.{acct}.BTCUSDT"
    async with running_gateway(settings_for(port)) as _gw:
        stub = _gw[1]
        fake.seq = 100  # other members traded before
        resp = await stub.PlaceOrder(place_request(acct, "ord-l1"), timeout=5)
        assert resp.status == order_pb2.ORDER_STATUS_NEW
        # Filled at once, maybe before the account's execution stream is open: it is replayed, not lost.
        first_fill = fake.fill(acct, "ord-l1", "1")
        assert await wait_count(bus, "FILLS", fills_subject, 1) == 1
        assert await wait_count(bus, "EXEC", f"exec.prism.{acct}", 2) == 2

    # The gateway is down: the venue keeps executing.
    fake.fill(acct, "ord-l1", "1", "99")
    fake.fill(acct, "ord-l1", "1", "98")
    fake.replay_slack = 3  # and replays more than asked for

    async with running_gateway(settings_for(port)):
        assert await wait_count(bus, "FILLS", fills_subject, 3) == 3
        assert await wait_count(bus, "EXEC", f"exec.prism.{acct}", 4) == 4
        resumed = [after for a, after in fake.stream_requests if a == acct]
        # From just before the account's first event, then (after the restart) from the last event the stored
        # reports vouch for: the fill's report went out together with the fill, so it vouches only for the event
        # before it, and the fill is replayed (deduplicated below).
        assert resumed == [100, first_fill.exec_sequence - 1]
        await asyncio.sleep(0.3)  # would-be duplicates have had time to land

    assert await wait_count(bus, "FILLS", fills_subject, 3, timeout_s=0) == 3
    fills = [fill_pb2.Fill.FromString(m.data) for m in await read_all(bus, "FILLS", fills_subject)]
    assert [f.price.value for f in fills] == ["100", "99", "98"]
    assert len({f.fill_id for f in fills}) == 3
    reports = [events_pb2.ExecutionReport.FromString(m.data) for m in await read_all(bus, "EXEC", f"exec.prism.{acct}")]
    assert [r.cum_qty.value for r in reports] == ["0", "1", "2", "3"]
    assert reports[-1].order_status == order_pb2.ORDER_STATUS_FILLED


async def test_venue_rejections_are_published_and_returned_and_bad_venues_are_refused(
    prism: tuple[FakePrism, int], bus: Bus
) -> None:
    _, port = prism
    acct = account()
    async with running_gateway(settings_for(port)) as (_, stub):
        big = await stub.PlaceOrder(place_request(acct, "ord-big", qty="5000"), timeout=5)
        assert big.status == order_pb2.ORDER_STATUS_REJECTED
        bad = place_request(acct, "ord-bad")
        bad.symbol = "BADSYM"
        refused = await stub.PlaceOrder(bad, timeout=5)
        assert refused.status == order_pb2.ORDER_STATUS_REJECTED

        binance = place_request(acct, "ord-bin")
        binance.venue = venue_pb2.VENUE_BINANCE_SPOT
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.PlaceOrder(binance, timeout=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        status = status_from_trailers(err.value.trailing_metadata())
        assert status is not None
        info = error_info(status)
        assert info is not None and info.reason == "UNKNOWN_VENUE"

        unspecified = place_request(acct, "ord-none")
        unspecified.venue = venue_pb2.VENUE_UNSPECIFIED
        with pytest.raises(grpc.aio.AioRpcError) as err2:
            await stub.PlaceOrder(unspecified, timeout=5)
        assert err2.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        venues = await stub.ListVenues(live_gateway_pb2.ListVenuesRequest(), timeout=5)
        assert [v.venue for v in venues.venues] == [venue_pb2.VENUE_PRISM]
        assert venues.venues[0].simulated and venues.venues[0].native_amend
        vs = await stub.GetVenueStatus(live_gateway_pb2.GetVenueStatusRequest(venue=venue_pb2.VENUE_PRISM), timeout=5)
        assert vs.state == live_gateway_pb2.CONNECTION_STATE_CONNECTED
        assert vs.orders_placed == 2 and vs.orders_rejected == 2 and vs.round_trip_p50_ns > 0
        assert await wait_count(bus, "EXEC", f"exec.prism.{acct}", 2) == 2

    reports = {
        r.order_id: r
        for r in (
            events_pb2.ExecutionReport.FromString(m.data) for m in await read_all(bus, "EXEC", f"exec.prism.{acct}")
        )
    }
    assert reports["ord-big"].exec_type == events_pb2.EXEC_TYPE_REJECTED
    assert reports["ord-big"].reason == errors_pb2.ERROR_REASON_VENUE_REJECTED
    assert reports["ord-big"].text == "quantity above the member's limit"
    assert reports["ord-bad"].report_id == f"prism:{acct}:gw:ord-bad:rejected"
    assert reports["ord-bad"].order_status == order_pb2.ORDER_STATUS_REJECTED
    assert "unknown symbol BADSYM" in reports["ord-bad"].text


async def test_amend_and_cancel_publish_replaced_canceled_and_cancel_rejected(
    prism: tuple[FakePrism, int], bus: Bus
) -> None:
    _, port = prism
    acct = account()
    async with running_gateway(settings_for(port)) as (_, stub):
        placed = await stub.PlaceOrder(place_request(acct, "ord-a1"), timeout=5)
        new_spec = place_request(acct, "ord-a1").spec
        new_spec.quantity.value, new_spec.limit_price.value = "2", "99.5"
        amended = await stub.AmendOrder(
            live_gateway_pb2.AmendOrderRequest(
                account_id=acct,
                symbol="BTCUSDT",
                venue=venue_pb2.VENUE_PRISM,
                order_id="ord-a1",
                new_spec=new_spec,
                order_version=2,
            ),
            timeout=5,
        )
        assert amended.accepted and amended.venue_order_id == placed.venue_order_id
        cancel = live_gateway_pb2.CancelOrderRequest(account_id=acct, venue=venue_pb2.VENUE_PRISM, order_id="ord-a1")
        assert (await stub.CancelOrder(cancel, timeout=5)).accepted
        assert not (await stub.CancelOrder(cancel, timeout=5)).accepted
        assert await wait_count(bus, "EXEC", f"exec.prism.{acct}", 4) == 4

    reports = [events_pb2.ExecutionReport.FromString(m.data) for m in await read_all(bus, "EXEC", f"exec.prism.{acct}")]
    assert [r.exec_type for r in reports] == [
        events_pb2.EXEC_TYPE_NEW,
        events_pb2.EXEC_TYPE_REPLACED,
        events_pb2.EXEC_TYPE_CANCELED,
        events_pb2.EXEC_TYPE_CANCEL_REJECTED,
    ]
    replaced = reports[1]
    assert (replaced.quantity.value, replaced.limit_price.value) == ("2", "99.5")
    assert reports[2].order_status == order_pb2.ORDER_STATUS_CANCELED
    assert reports[3].reason == errors_pb2.ERROR_REASON_TOO_LATE_TO_CANCEL
