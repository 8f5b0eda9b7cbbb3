"""Binance spot: the signed REST order API and the user-data stream (executionReport events).

NOT EXERCISED AGAINST THE LIVE EXCHANGE: there is no internet where this was built. It follows Binance's documented
spot API (SIGNED endpoints: HMAC-SHA256 of the query string with the API secret, ``timestamp`` and ``recvWindow``,
``X-MBX-APIKEY`` header; ``POST/DELETE /api/v3/order``; ``POST/PUT /api/v3/userDataStream`` listen keys and the
``/ws/<listenKey>`` WebSocket) and is tested against a local server replaying the documented responses and events.

Mapping: the OMS order id is sent as ``newClientOrderId`` and comes back as ``c`` (``C`` on cancels); all
executions of the API key belong to one OMS account (settings). Report ids derive from the order id ``i`` and the
execution id ``I``, fill ids from the trade id ``t`` (``binance_spot:<t>:<i>``).

Not done: native amend (order.cancelReplace re-uses the client order id in a way the OMS would see as a cancel and
a new order), and replaying events missed while the user-data stream was down (Binance does not replay them: a
reconciliation through ``GET /api/v3/myTrades`` after a reconnect would close that gap).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import urllib.parse
from decimal import Decimal
from typing import Any

import aiohttp
import structlog

from services.live_gateway.domain.model import (
    AmendOrder,
    AmendResult,
    CancelOrder,
    CancelResult,
    ConnectionState,
    ConnectionStatus,
    ExecType,
    Liquidity,
    NotSupported,
    OrderStatus,
    OrderType,
    PlaceOrder,
    PlaceResult,
    Side,
    StatusHolder,
    TimeInForce,
    Venue,
    VenueCapabilities,
    VenueExecution,
    VenueRateLimited,
    VenueRejected,
    VenueUnavailable,
)
from services.live_gateway.domain.ports import Checkpoints, Clock, ExecutionSink

log = structlog.get_logger("live_gateway.binance")

CAPABILITIES = VenueCapabilities(
    display_name="Binance Spot",
    simulated=False,
    order_types=(OrderType.MARKET, OrderType.LIMIT, OrderType.STOP, OrderType.STOP_LIMIT),
    time_in_force=(TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK),
    native_amend=False,
)
ORDER_COUNT_HEADER = "X-MBX-ORDER-COUNT-10S"

_EXEC_TYPES = {
    "NEW": ExecType.NEW,
    "CANCELED": ExecType.CANCELED,
    "REPLACED": ExecType.REPLACED,
    "REJECTED": ExecType.REJECTED,
    "TRADE": ExecType.TRADE,
    "EXPIRED": ExecType.EXPIRED,
    "TRADE_PREVENTION": ExecType.EXPIRED,
}
_STATUSES = {
    "NEW": OrderStatus.NEW,
    "PENDING_NEW": OrderStatus.PENDING_NEW,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "PENDING_CANCEL": OrderStatus.PENDING_CANCEL,
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,
}


def sign(secret: str, payload: str) -> str:
    """HMAC-SHA256 of the total parameters (query string + body) with the API secret, hex (Binance SIGNED)."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def signed_query(params: list[tuple[str, str]], secret: str, timestamp_ms: int, recv_window_ms: int) -> str:
    query = urllib.parse.urlencode([*params, ("recvWindow", str(recv_window_ms)), ("timestamp", str(timestamp_ms))])
    return f"{query}&signature={sign(secret, query)}"


def _num(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def order_params(order: PlaceOrder) -> list[tuple[str, str]]:
    """POST /api/v3/order parameters; raises VenueRejected(NOT_SUPPORTED) for what spot orders cannot express."""
    spec = order.spec
    if spec.time_in_force == TimeInForce.GTD:
        raise VenueRejected("NOT_SUPPORTED", "Binance spot has no GTD time in force")
    if spec.reduce_only:
        raise VenueRejected("NOT_SUPPORTED", "Binance spot has no reduce-only orders")
    kind = {
        OrderType.MARKET: "MARKET",
        OrderType.LIMIT: "LIMIT_MAKER" if spec.post_only else "LIMIT",
        OrderType.STOP: "STOP_LOSS",
        OrderType.STOP_LIMIT: "STOP_LOSS_LIMIT",
    }[spec.order_type]
    params = [("symbol", order.symbol), ("side", spec.side.value), ("type", kind)]
    if kind in ("LIMIT", "STOP_LOSS_LIMIT"):
        params.append(("timeInForce", spec.time_in_force.value))
    params.append(("quantity", _num(spec.quantity)))
    if spec.limit_price is not None:
        params.append(("price", _num(spec.limit_price)))
    if spec.stop_price is not None:
        params.append(("stopPrice", _num(spec.stop_price)))
    params += [("newClientOrderId", order.order_id), ("newOrderRespType", "RESULT")]
    return params


def error_reason(code: int, msg: str) -> str:
    """trade.type.v1.ErrorReason for a Binance error code (and message, where one code covers several cases)."""
    text = msg.lower()
    if code == -1121:
        return "UNKNOWN_SYMBOL"
    if code == -2011 or "unknown order" in text or "does not exist" in text:
        return "ORDER_NOT_FOUND"
    if code == -1013 or "filter failure" in text:
        if "lot_size" in text:
            return "INVALID_LOT_SIZE"
        if "price_filter" in text:
            return "INVALID_TICK_SIZE"
        if "notional" in text:
            return "BELOW_MIN_NOTIONAL"
    if "immediately match and take" in text:
        return "POST_ONLY_WOULD_TAKE"
    if code in (-1015, -1003):
        return "VENUE_RATE_LIMITED"
    return "VENUE_REJECTED"


def _dec(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    return Decimal(str(value))


def parse_execution_report(event: dict[str, Any], account_id: str, receive_time_ns: int) -> VenueExecution:
    """An ``executionReport`` user-data event as a venue-neutral execution."""
    x = str(event["x"])
    status = _STATUSES.get(str(event["X"]))
    exec_type = _EXEC_TYPES.get(x, ExecType.NEW)
    # On a cancel, "c" is the cancel request's id and "C" the canceled order's client order id.
    order_id = str(event.get("C") or event["c"]) if x == "CANCELED" else str(event["c"])
    quantity = _dec(event.get("q"))
    cum = _dec(event.get("z")) or Decimal(0)
    cum_quote = _dec(event.get("Z")) or Decimal(0)
    price = _dec(event.get("p"))
    trade = x == "TRADE"
    leaves = Decimal(0) if status is None or status.done or quantity is None else quantity - cum
    reason = str(event.get("r") or "NONE")
    return VenueExecution(
        venue=Venue.BINANCE_SPOT,
        account_id=account_id,
        symbol=str(event["s"]),
        order_id=order_id,
        venue_order_id=str(event["i"]),
        exec_id=f"{event['i']}:{event['I']}",
        exec_type=exec_type,
        order_status=status,
        side=Side(str(event["S"])),
        quantity=quantity,
        limit_price=price if price else None,
        last_price=_dec(event.get("L")) if trade else None,
        last_quantity=_dec(event.get("l")) if trade else None,
        cum_qty=cum,
        leaves_qty=leaves,
        avg_price=cum_quote / cum if cum > 0 else None,
        fee=_dec(event.get("n")) if trade else None,
        fee_currency=str(event.get("N") or "") if trade else "",
        liquidity=(Liquidity.MAKER if event.get("m") else Liquidity.TAKER) if trade else Liquidity.UNSPECIFIED,
        trade_id=str(event["t"]) if trade else "",
        reason="VENUE_REJECTED" if exec_type == ExecType.REJECTED else "",
        text="" if reason == "NONE" else reason,
        event_time_ns=int(event.get("T") or event.get("E") or 0) * 1_000_000,
        receive_time_ns=receive_time_ns,
    )


class BinanceSpotAdapter:
    def __init__(
        self,
        rest_url: str,
        ws_url: str,
        api_key: str,
        api_secret: str,
        account_id: str,
        clock: Clock,
        recv_window_ms: int = 5000,
        order_limit_10s: int = 100,
        timeout_s: float = 10.0,
        keepalive_s: float = 30 * 60,
        backoff_s: tuple[float, float] = (0.5, 30.0),
        ready_timeout_s: float = 5.0,
    ) -> None:
        self._rest = rest_url.rstrip("/")
        self._ws = ws_url.rstrip("/")
        self._key = api_key
        self._secret = api_secret
        self.account_id = account_id
        self._clock = clock
        self._recv_window = recv_window_ms
        self._order_limit = order_limit_10s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._keepalive_s = keepalive_s
        self._backoff_s = backoff_s
        self._ready_timeout_s = ready_timeout_s
        self._status = StatusHolder()
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._sink: ExecutionSink | None = None
        self.ready = asyncio.Event()

    @property
    def venue(self) -> Venue:
        return Venue.BINANCE_SPOT

    @property
    def capabilities(self) -> VenueCapabilities:
        return CAPABILITIES

    def status(self) -> ConnectionStatus:
        return self._status.snapshot()

    async def start(self, sink: ExecutionSink, checkpoints: Checkpoints) -> None:
        self._sink = sink
        self._session = aiohttp.ClientSession(headers={"X-MBX-APIKEY": self._key})
        self._task = asyncio.create_task(self._user_stream(), name="binance-user-stream")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ready.wait(), self._ready_timeout_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    # --- REST ------------------------------------------------------------------------------------------------

    async def _signed(self, method: str, path: str, params: list[tuple[str, str]]) -> dict[str, Any]:
        assert self._session is not None
        query = signed_query(params, self._secret, self._clock.now_ns() // 1_000_000, self._recv_window)
        try:
            async with self._session.request(method, f"{self._rest}{path}?{query}", timeout=self._timeout) as resp:
                count = resp.headers.get(ORDER_COUNT_HEADER)
                if count is not None and count.isdigit():
                    self._status.rate_limit_remaining = max(self._order_limit - int(count), 0)
                body = await resp.text()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise VenueUnavailable(f"{method} {path}: {exc!r}") from exc
        self._status.alive(self._clock.now_ns())
        if status in (429, 418):
            raise VenueRateLimited(f"HTTP {status}: {body[:200]}")
        if status >= 500:
            # Binance: the request's outcome is unknown.
            raise VenueUnavailable(f"HTTP {status}: {body[:200]}")
        try:
            doc: dict[str, Any] = json.loads(body)
        except ValueError as exc:
            raise VenueUnavailable(f"HTTP {status}: not JSON: {body[:200]}") from exc
        if status != 200:
            code = int(doc.get("code", 0))
            msg = str(doc.get("msg", body[:200]))
            raise VenueRejected(error_reason(code, msg), msg, str(code))
        return doc

    async def place(self, order: PlaceOrder) -> PlaceResult:
        doc = await self._signed("POST", "/api/v3/order", order_params(order))
        status = _STATUSES.get(str(doc.get("status", "NEW")), OrderStatus.NEW)
        return PlaceResult(str(doc.get("orderId", "")), status)

    async def cancel(self, cancel: CancelOrder) -> CancelResult:
        if not cancel.symbol:
            raise VenueRejected("VALIDATION_FAILED", "Binance cancels need the symbol")
        params = [("symbol", cancel.symbol)]
        params.append(
            ("orderId", cancel.venue_order_id) if cancel.venue_order_id else ("origClientOrderId", cancel.order_id)
        )
        await self._signed("DELETE", "/api/v3/order", params)
        return CancelResult(True)

    async def amend(self, amend: AmendOrder) -> AmendResult:
        raise NotSupported("amend is not implemented for Binance spot: cancel and place a new order")

    # --- User-data stream ------------------------------------------------------------------------------------

    async def _listen_key(self) -> str:
        assert self._session is not None
        async with self._session.post(f"{self._rest}/api/v3/userDataStream", timeout=self._timeout) as resp:
            doc = await resp.json(content_type=None)
            if resp.status != 200:
                raise VenueUnavailable(f"listenKey: HTTP {resp.status}: {doc}")
            return str(doc["listenKey"])

    async def _keepalive(self, listen_key: str) -> None:
        assert self._session is not None
        while True:
            await asyncio.sleep(self._keepalive_s)
            async with self._session.put(
                f"{self._rest}/api/v3/userDataStream", params={"listenKey": listen_key}, timeout=self._timeout
            ) as resp:
                if resp.status != 200:
                    log.warning("binance.keepalive_failed", status=resp.status)

    async def _user_stream(self) -> None:
        assert self._session is not None and self._sink is not None
        delay = self._backoff_s[0]
        while True:
            keepalive: asyncio.Task[None] | None = None
            try:
                listen_key = await self._listen_key()
                async with self._session.ws_connect(f"{self._ws}/ws/{listen_key}", heartbeat=30) as ws:
                    self._status.set(ConnectionState.CONNECTED, "", self._clock.now_ns())
                    self.ready.set()
                    keepalive = asyncio.create_task(self._keepalive(listen_key))
                    delay = self._backoff_s[0]
                    async for msg in ws:
                        if msg.type != aiohttp.WSMsgType.TEXT:
                            continue
                        now = self._clock.now_ns()
                        self._status.alive(now)
                        doc = json.loads(msg.data)
                        event = doc.get("data") or doc.get("event") or doc
                        if event.get("e") == "executionReport":
                            await self._sink((parse_execution_report(event, self.account_id, now),), False)
                        elif event.get("e") == "listenKeyExpired":
                            break
                self._status.set(ConnectionState.CONNECTING, "user-data stream closed", self._clock.now_ns())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._status.set(ConnectionState.CONNECTING, f"user-data stream: {exc!r}", self._clock.now_ns())
                log.warning("binance.user_stream_failed", error=repr(exc))
            finally:
                if keepalive is not None:
                    keepalive.cancel()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff_s[1])
