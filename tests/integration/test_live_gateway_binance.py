"""live-gateway's Binance spot adapter against a local server replaying Binance's documented REST answers and
user-data events (no internet here): signed orders, a partial then full fill, a -2010 rejection, a refused cancel
and a bad signature, all landing in EXEC/FILLS with deterministic ids."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import json
import random
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from trade.live_gateway.v1 import events_pb2, live_gateway_pb2
from trade.type.v1 import decimal_pb2, fill_pb2, order_pb2, venue_pb2

from services.live_gateway.settings import LiveGatewaySettings
from services.runtime.bus import Bus
from tests.support.live_gateway import read_all, running_gateway, wait_count

pytestmark = pytest.mark.usefixtures("mesh")

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "live_gateway" / "binance"
API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"


def fixture(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return doc


@dataclass
class ReplayStats:
    good_signatures: int = 0
    bad_signatures: int = 0
    orders: list[dict[str, str]] = field(default_factory=list)


class BinanceReplay:
    """REST (order, cancel, listen key) and the /ws/<listenKey> user-data stream of one API key."""

    def __init__(self) -> None:
        self.stats = ReplayStats()
        self.listen_key = fixture("user_data_stream.json")["listenKey"]
        self.sockets: list[web.WebSocketResponse] = []
        self._next_order = random.randint(10**9, 2 * 10**9)
        self._next_trade = random.randint(10**9, 2 * 10**9)
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/v3/userDataStream", self.user_data_stream)
        app.router.add_put("/api/v3/userDataStream", self.user_data_stream)
        app.router.add_post("/api/v3/order", self.new_order)
        app.router.add_delete("/api/v3/order", self.cancel_order)
        app.router.add_get("/ws/{listen_key}", self.ws)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for ws in self.sockets:
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def _error(self, name: str, status: int = 400) -> web.Response:
        return web.json_response(fixture(name), status=status)

    def _verify(self, request: web.Request) -> dict[str, str] | None:
        """Binance SIGNED check: API key header, HMAC of the query before &signature=, timestamp in recvWindow."""
        payload, _, signature = request.query_string.rpartition("&signature=")
        expected = hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()
        params = dict(request.query)
        fresh = abs(int(params.get("timestamp", "0")) - time.time() * 1000) < int(params.get("recvWindow", "5000"))
        if request.headers.get("X-MBX-APIKEY") != API_KEY or not hmac.compare_digest(signature, expected) or not fresh:
            self.stats.bad_signatures += 1
            return None
        self.stats.good_signatures += 1
        return params

    async def user_data_stream(self, request: web.Request) -> web.Response:
        if request.headers.get("X-MBX-APIKEY") != API_KEY:
            return self._error("error_bad_signature.json", 401)
        return web.json_response(fixture("user_data_stream.json") if request.method == "POST" else {})

    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        if request.match_info["listen_key"] == self.listen_key:
            self.sockets.append(ws)
            async for _ in ws:
                pass
        return ws

    async def new_order(self, request: web.Request) -> web.Response:
        params = self._verify(request)
        if params is None:
            return self._error("error_bad_signature.json")
        self.stats.orders.append(params)
        if float(params["quantity"]) > 100:
            return self._error("error_insufficient_balance.json")
        self._next_order += 1
        order_id = self._next_order
        body = fixture("order_result_new.json")
        body.update(symbol=params["symbol"], clientOrderId=params["newClientOrderId"], orderId=order_id)
        task = asyncio.create_task(self._execute(params, order_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.json_response(body, headers={"X-MBX-ORDER-COUNT-10S": "3"})

    async def _execute(self, params: dict[str, str], order_id: int) -> None:
        """The documented NEW, then a partial (0.4) and a full (0.6) fill of the order."""
        for name in (
            "execution_report_new.json",
            "execution_report_trade_partial.json",
            "execution_report_trade_full.json",
        ):
            event = copy.deepcopy(fixture(name))
            event.update(s=params["symbol"], c=params["newClientOrderId"], i=order_id)
            if event["t"] != -1:
                self._next_trade += 1
                event["t"] = self._next_trade
            for ws in self.sockets:
                await ws.send_str(json.dumps(event))
            await asyncio.sleep(0.01)

    async def cancel_order(self, request: web.Request) -> web.Response:
        if self._verify(request) is None:
            return self._error("error_bad_signature.json")
        return web.json_response({"code": -2011, "msg": "Unknown order sent."}, status=400)


@pytest.fixture
async def replay() -> AsyncIterator[BinanceReplay]:
    server = BinanceReplay()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def bus() -> AsyncIterator[Bus]:
    b = Bus(LiveGatewaySettings().nats_url, "test-live-gateway-binance")
    await b.connect()
    yield b
    await b.close()


def settings_for(replay: BinanceReplay, account_id: str, secret: str = SECRET) -> LiveGatewaySettings:
    return LiveGatewaySettings(
        port=0,
        prism_enabled=False,
        paper_enabled=False,
        binance_api_key=API_KEY,
        binance_api_secret=secret,  # type: ignore[arg-type]
        binance_account_id=account_id,
        binance_trade_rest_url=f"http://127.0.0.1:{replay.port}",
        binance_trade_ws_url=f"ws://127.0.0.1:{replay.port}",
        shutdown_grace_s=0.5,
        log_json=False,
    )


def order(account_id: str, order_id: str, qty: str) -> live_gateway_pb2.PlaceOrderRequest:
    return live_gateway_pb2.PlaceOrderRequest(
        account_id=account_id,
        symbol="ETHBTC",
        venue=venue_pb2.VENUE_BINANCE_SPOT,
        order_id=order_id,
        client_order_id=f"cli-{order_id}",
        spec=order_pb2.OrderSpec(
            side=order_pb2.SIDE_BUY,
            order_type=order_pb2.ORDER_TYPE_LIMIT,
            quantity=decimal_pb2.Decimal(value=qty),
            limit_price=decimal_pb2.Decimal(value="0.10264410"),
            time_in_force=order_pb2.TIME_IN_FORCE_GTC,
        ),
    )


async def test_signed_order_partial_then_full_fill_rejection_and_refused_cancel(
    replay: BinanceReplay, bus: Bus
) -> None:
    acct = f"lgw-bn-{uuid.uuid4().hex[:10]}"
    oid, big = f"lgw{uuid.uuid4().hex[:12]}", f"lgw{uuid.uuid4().hex[:12]}"
    exec_subject, fills_subject = f"exec.binance_spot.{acct}", f"fills.{acct}.ETHBTC"
    async with running_gateway(settings_for(replay, acct)) as (_, stub):
        placed = await stub.PlaceOrder(order(acct, oid, "1"), timeout=5)
        assert placed.status == order_pb2.ORDER_STATUS_NEW and placed.venue_order_id.isdigit()
        assert await wait_count(bus, "FILLS", fills_subject, 2) == 2
        assert await wait_count(bus, "EXEC", exec_subject, 3) == 3

        rejected = await stub.PlaceOrder(order(acct, big, "500"), timeout=5)
        assert rejected.status == order_pb2.ORDER_STATUS_REJECTED

        cancel = await stub.CancelOrder(
            live_gateway_pb2.CancelOrderRequest(
                account_id=acct, symbol="ETHBTC", venue=venue_pb2.VENUE_BINANCE_SPOT, order_id="lgw-unknown"
            ),
            timeout=5,
        )
        assert not cancel.accepted
        assert await wait_count(bus, "EXEC", exec_subject, 5) == 5

        status = await stub.GetVenueStatus(
            live_gateway_pb2.GetVenueStatusRequest(venue=venue_pb2.VENUE_BINANCE_SPOT), timeout=5
        )
        assert status.state == live_gateway_pb2.CONNECTION_STATE_CONNECTED
        assert status.rate_limit_remaining == 97 and status.orders_placed == 2 and status.orders_rejected == 1
        assert status.traded_notional_today.value == "0.1026441"

    assert replay.stats.bad_signatures == 0 and replay.stats.good_signatures == 3
    sent = replay.stats.orders[0]
    assert sent["newClientOrderId"] == oid and sent["quantity"] == "1" and sent["price"] == "0.1026441"

    msgs = await read_all(bus, "EXEC", exec_subject)
    reports = [events_pb2.ExecutionReport.FromString(m.data) for m in msgs]
    assert [r.exec_type for r in reports] == [
        events_pb2.EXEC_TYPE_NEW,
        events_pb2.EXEC_TYPE_TRADE,
        events_pb2.EXEC_TYPE_TRADE,
        events_pb2.EXEC_TYPE_REJECTED,
        events_pb2.EXEC_TYPE_CANCEL_REJECTED,
    ]
    assert [(m.headers or {}).get("Nats-Msg-Id") for m in msgs] == [r.report_id for r in reports]
    new, partial, full, reject, cancel_reject = reports
    assert new.report_id == f"binance_spot:{acct}:{placed.venue_order_id}:8641984"
    assert partial.order_status == order_pb2.ORDER_STATUS_PARTIALLY_FILLED and partial.leaves_qty.value == "0.6"
    assert full.order_status == order_pb2.ORDER_STATUS_FILLED and full.cum_qty.value == "1"
    assert full.avg_price.value == "0.1026441" and full.client_order_id == f"cli-{oid}"
    assert reject.order_id == big and reject.text == "Account has insufficient balance for requested action."
    assert cancel_reject.order_id == "lgw-unknown" and cancel_reject.text == "Unknown order sent."

    fills = [fill_pb2.Fill.FromString(m.data) for m in await read_all(bus, "FILLS", fills_subject)]
    assert [f.quantity.value for f in fills] == ["0.4", "0.6"]
    assert [f.fill_id for f in fills] == [partial.fill.fill_id, full.fill.fill_id]
    assert all(f.fill_id == f"binance_spot:{f.venue_trade_id}:{placed.venue_order_id}" for f in fills)
    assert {f.fee_currency for f in fills} == {"BNB"} and fills[0].liquidity == fill_pb2.LIQUIDITY_MAKER


async def test_a_wrongly_signed_order_is_rejected_by_the_venue(replay: BinanceReplay, bus: Bus) -> None:
    acct = f"lgw-bn-{uuid.uuid4().hex[:10]}"
    oid = f"lgw{uuid.uuid4().hex[:12]}"
    async with running_gateway(settings_for(replay, acct, secret="not-the-secret")) as (_, stub):
        resp = await stub.PlaceOrder(order(acct, oid, "1"), timeout=5)
        assert resp.status == order_pb2.ORDER_STATUS_REJECTED
        assert await wait_count(bus, "EXEC", f"exec.binance_spot.{acct}", 1) == 1
    assert replay.stats.bad_signatures == 1 and replay.stats.good_signatures == 0
    (msg,) = await read_all(bus, "EXEC", f"exec.binance_spot.{acct}")
    report = events_pb2.ExecutionReport.FromString(msg.data)
    assert report.exec_type == events_pb2.EXEC_TYPE_REJECTED
    assert report.text == "Signature for this request is not valid."
