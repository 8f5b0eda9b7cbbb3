"""A trader's client through the edge (grpc.aio): login, orders, fills, positions, PnL, with bounded waits."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_UP, Decimal

import grpc
from trade.authn.v1 import authn_pb2, authn_pb2_grpc
from trade.marketdata.v1 import marketdata_pb2, marketdata_pb2_grpc
from trade.oms.v1 import oms_pb2, oms_pb2_grpc
from trade.pnl.v1 import pnl_pb2, pnl_pb2_grpc
from trade.ptrc.v1 import ptrc_pb2, ptrc_pb2_grpc
from trade.type.v1 import decimal_pb2, fill_pb2, order_pb2

from tests.support.edge import DEMO_PASSWORDS, EDGE, bearer

Metadata = tuple[tuple[str, str], ...]


def dec(value: object) -> decimal_pb2.Decimal:
    return decimal_pb2.Decimal(value=str(value))


@dataclass
class FillWatch:
    """Fills of one StreamFills call, collected in the background."""

    task: asyncio.Task[None] | None = None
    fills: list[fill_pb2.Fill] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    error: BaseException | None = None

    async def until(self, predicate: Callable[[fill_pb2.Fill], bool], within_s: float) -> fill_pb2.Fill:
        deadline = time.monotonic() + within_s
        while True:
            for f in self.fills:
                if predicate(f):
                    return f
            if self.error is not None:
                raise AssertionError(f"fill stream failed: {self.error!r}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching fill within {within_s}s ({len(self.fills)} other fills)")
            self.arrived.clear()
            try:
                async with asyncio.timeout(left):
                    await self.arrived.wait()
            except TimeoutError:
                pass

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()


@dataclass
class TraderClient:
    username: str
    account: str
    channel: grpc.aio.Channel
    auth: Metadata

    @classmethod
    async def login(cls, username: str, account: str) -> TraderClient:
        channel = grpc.aio.insecure_channel(EDGE)
        request = authn_pb2.LoginRequest(
            password=authn_pb2.PasswordCredential(username=username, password=DEMO_PASSWORDS[username])
        )
        response = await authn_pb2_grpc.AuthnServiceStub(channel).Login(request, timeout=10)
        return cls(username, account, channel, bearer(response.tokens.access_token))

    async def close(self) -> None:
        await self.channel.close()

    @property
    def oms(self) -> oms_pb2_grpc.OmsServiceAsyncStub:
        return oms_pb2_grpc.OmsServiceStub(self.channel)

    async def submit_full(
        self,
        symbol: str,
        spec: order_pb2.OrderSpec,
        *,
        client_order_id: str = "",
        account: str = "",
        deadline_s: float = 5.0,
    ) -> oms_pb2.SubmitOrderResponse:
        request = oms_pb2.SubmitOrderRequest(
            account_id=account or self.account,
            symbol=symbol,
            client_order_id=client_order_id or f"e2e-{uuid.uuid4().hex[:16]}",
            spec=spec,
        )
        response: oms_pb2.SubmitOrderResponse = await self.oms.SubmitOrder(
            request, metadata=self.auth, timeout=deadline_s
        )
        return response

    async def submit(
        self,
        symbol: str,
        spec: order_pb2.OrderSpec,
        *,
        client_order_id: str = "",
        account: str = "",
        deadline_s: float = 5.0,
    ) -> order_pb2.Order:
        response = await self.submit_full(
            symbol, spec, client_order_id=client_order_id, account=account, deadline_s=deadline_s
        )
        return response.order

    async def get_order(self, order_id: str) -> order_pb2.Order:
        response = await self.oms.GetOrder(
            oms_pb2.GetOrderRequest(account_id=self.account, order_id=order_id), metadata=self.auth, timeout=5
        )
        order: order_pb2.Order = response.order
        return order

    async def wait_order(
        self,
        order_id: str,
        statuses: set[int],
        within_s: float,
        extra: Callable[[order_pb2.Order], bool] = lambda _o: True,
    ) -> order_pb2.Order:
        deadline = time.monotonic() + within_s
        while True:
            order = await self.get_order(order_id)
            if order.status in statuses and extra(order):
                return order
            if time.monotonic() > deadline:
                status = order_pb2.OrderStatus.Name(order.status)
                raise AssertionError(f"order {order_id} still {status} after {within_s}s")
            await asyncio.sleep(0.05)

    async def list_orders(self, symbol: str) -> list[order_pb2.Order]:
        out: list[order_pb2.Order] = []
        token = ""
        for _ in range(1000):
            page = await self.oms.ListOrders(
                oms_pb2.ListOrdersRequest(account_id=self.account, symbol=symbol, page_size=500, page_token=token),
                metadata=self.auth,
                timeout=10,
            )
            out.extend(page.orders)
            token = page.next_page_token
            if not token:
                return out
        raise AssertionError("ListOrders never ended")

    async def cancel_quietly(self, order_id: str) -> None:
        try:
            await self.oms.CancelOrder(
                oms_pb2.CancelOrderRequest(account_id=self.account, order_id=order_id), metadata=self.auth, timeout=5
            )
        except grpc.aio.AioRpcError as error:
            if error.code() not in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND):
                raise

    def watch_fills(self, symbols: list[str]) -> FillWatch:
        watch = FillWatch()
        call = self.oms.StreamFills(
            oms_pb2.StreamFillsRequest(account_id=self.account, symbols=symbols), metadata=self.auth
        )

        async def run() -> None:
            try:
                async for response in call:
                    if response.WhichOneof("payload") == "fill":
                        watch.fills.append(response.fill)
                        watch.arrived.set()
            except asyncio.CancelledError:
                call.cancel()
                raise
            except grpc.aio.AioRpcError as error:
                watch.error = error
                watch.arrived.set()

        watch.task = asyncio.create_task(run())
        return watch

    async def position(self, symbol: str) -> Decimal:
        stub = ptrc_pb2_grpc.PtrcServiceStub(self.channel)
        try:
            response = await stub.GetPosition(
                ptrc_pb2.GetPositionRequest(account_id=self.account, symbol=symbol), metadata=self.auth, timeout=5
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return Decimal(0)
            raise
        return Decimal(response.position.quantity.value or "0")

    async def wait_position(self, symbol: str, predicate: Callable[[Decimal], bool], within_s: float) -> Decimal:
        deadline = time.monotonic() + within_s
        while True:
            quantity = await self.position(symbol)
            if predicate(quantity):
                return quantity
            if time.monotonic() > deadline:
                raise AssertionError(f"position {self.account}/{symbol} still {quantity} after {within_s}s")
            await asyncio.sleep(0.1)

    async def pnl(self, symbol: str) -> pnl_pb2.GetPnlResponse:
        stub = pnl_pb2_grpc.PnlServiceStub(self.channel)
        response: pnl_pb2.GetPnlResponse = await stub.GetPnl(
            pnl_pb2.GetPnlRequest(account_id=self.account, symbol=symbol), metadata=self.auth, timeout=5
        )
        return response

    async def instrument(self, symbol: str) -> tuple[Decimal, Decimal]:
        """(tick size, best bid/ask mid) of a symbol from the marketdata service."""
        stub = marketdata_pb2_grpc.MarketDataServiceStub(self.channel)
        listing = await stub.ListInstruments(marketdata_pb2.ListInstrumentsRequest(), metadata=self.auth, timeout=5)
        tick = next(Decimal(i.tick_size.value) for i in listing.instruments if i.symbol == symbol)
        snap = await stub.GetSnapshot(marketdata_pb2.GetSnapshotRequest(symbol=symbol), metadata=self.auth, timeout=5)
        mid = (Decimal(snap.quote.bid_price.value) + Decimal(snap.quote.ask_price.value)) / 2
        return tick, mid


def _on_tick(price: Decimal, tick: Decimal, rounding: str) -> Decimal:
    return (price / tick).quantize(Decimal(1), rounding=rounding) * tick


async def marketable_limit(client: TraderClient, symbol: str, side: int, qty: str) -> order_pb2.OrderSpec:
    """An IOC limit 0.5 % through the mid: fills at once against the book, inside any sane price band."""
    tick, mid = await client.instrument(symbol)
    buy = side == order_pb2.SIDE_BUY
    price = _on_tick(mid * (Decimal("1.005") if buy else Decimal("0.995")), tick, ROUND_UP if buy else ROUND_DOWN)
    return order_pb2.OrderSpec(
        side=side,  # type: ignore[arg-type]
        order_type=order_pb2.ORDER_TYPE_LIMIT,
        quantity=dec(qty),
        limit_price=dec(price),
        time_in_force=order_pb2.TIME_IN_FORCE_IOC,
    )


async def far_limit(client: TraderClient, symbol: str, side: int, qty: str) -> order_pb2.OrderSpec:
    """A GTC limit 4 % away from the mid on the passive side (inside risk's 5 % band): rests for a test's length."""
    tick, mid = await client.instrument(symbol)
    buy = side == order_pb2.SIDE_BUY
    price = _on_tick(mid * (Decimal("0.96") if buy else Decimal("1.04")), tick, ROUND_DOWN if buy else ROUND_UP)
    return order_pb2.OrderSpec(
        side=side,  # type: ignore[arg-type]
        order_type=order_pb2.ORDER_TYPE_LIMIT,
        quantity=dec(qty),
        limit_price=dec(price),
        time_in_force=order_pb2.TIME_IN_FORCE_GTC,
    )
