"""ptrc against the real NATS: fills for a test-unique account (with a duplicate publish and a duplicate fill id)
net into the right position, served over gRPC and streamed, published on POSITIONS; a new instance rebuilds the
identical state from FILLS, and Reconcile finds no difference."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from trade.ptrc.v1 import events_pb2, ptrc_pb2, ptrc_pb2_grpc
from trade.type.v1 import decimal_pb2, fill_pb2, order_pb2

from services.ptrc.bootstrap import Ptrc, build, compose
from services.ptrc.settings import PtrcSettings
from services.runtime.bus import Bus
from services.runtime.server import start_server
from services.runtime.streams import FILLS, POSITIONS

pytestmark = pytest.mark.usefixtures("mesh")

SYMBOL = "BTCUSDT"


def D(value: str) -> decimal_pb2.Decimal:
    return decimal_pb2.Decimal(value=value)


def make_fill(account: str, n: int, side: order_pb2.Side.ValueType, qty: str, price: str, fee: str) -> fill_pb2.Fill:
    return fill_pb2.Fill(
        fill_id=f"prism:{account}:T{n}", order_id=f"O{n}", account_id=account, symbol=SYMBOL, side=side,
        price=D(price), quantity=D(qty), fee=D(fee), fee_currency="USDT", event_time_ns=time.time_ns(),
    )  # fmt: skip


async def publish(bus: Bus, fill: fill_pb2.Fill, msg_id: str | None = None) -> None:
    await bus.publish(f"fills.{fill.account_id}.{fill.symbol}", fill.SerializeToString(), msg_id or fill.fill_id)


async def eventually(check: object, limit_s: float = 10.0) -> None:
    assert callable(check)
    deadline = time.monotonic() + limit_s
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def read(stream: Any) -> ptrc_pb2.StreamPositionsResponse:
    msg = await asyncio.wait_for(stream.read(), 5)
    assert isinstance(msg, ptrc_pb2.StreamPositionsResponse)
    return msg


async def stored_events(bus: Bus, account: str) -> list[events_pb2.PositionEvent]:
    """What POSITIONS stored for the account (JetStream dropped re-published event ids)."""
    sub = await bus.js.subscribe(f"positions.{account}.>", stream="POSITIONS", ordered_consumer=True)
    out = []
    try:
        while True:
            msg = await sub.next_msg(timeout=5)
            out.append(events_pb2.PositionEvent.FromString(msg.data))
            if not msg.metadata.num_pending:
                return out
    finally:
        await sub.unsubscribe()


@pytest.fixture
async def bus() -> AsyncIterator[Bus]:
    bus = Bus(PtrcSettings().nats_url, "test-ptrc")
    await bus.connect()
    await bus.ensure_streams([FILLS, POSITIONS])
    yield bus
    await bus.close()


@pytest.fixture
def account() -> str:
    return f"test-ptrc-{uuid.uuid4().hex[:10]}"


def settings_for(account: str) -> PtrcSettings:
    return PtrcSettings(
        port=0,
        fills_subject=f"fills.{account}.>",
        durable=f"test-ptrc-{uuid.uuid4().hex[:10]}",
        heartbeat_interval_s=0.5,
        log_json=False,
        log_level="WARNING",
    )


async def test_fills_net_into_positions_served_streamed_published_rebuilt_and_reconciled(
    bus: Bus, account: str
) -> None:
    buy1 = make_fill(account, 1, order_pb2.SIDE_BUY, "1", "100", "0.1")
    buy2 = make_fill(account, 2, order_pb2.SIDE_BUY, "1", "110", "0.1")
    sell = make_fill(account, 3, order_pb2.SIDE_SELL, "1.5", "120", "0.18")
    await publish(bus, buy1)
    await publish(bus, buy2)

    settings = settings_for(account)
    durables = [settings.durable]
    running = await start_server(settings, await build(settings))
    second: Ptrc | None = None
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = ptrc_pb2_grpc.PtrcServiceStub(channel)
            stream = stub.StreamPositions(ptrc_pb2.StreamPositionsRequest(account_id=account), timeout=20)
            first = await read(stream)
            assert first.update.snapshot and first.update.position.quantity.value == "2"
            assert first.update.position.avg_entry_price.value == "105"
            assert (await read(stream)).HasField("heartbeat")  # end of the snapshot

            await publish(bus, sell)
            await publish(bus, sell)  # a re-publish: dropped by JetStream's duplicate window
            await publish(bus, sell, msg_id=f"{sell.fill_id}:again")  # the same fill id past that window

            async def sold() -> bool:
                got = await stub.GetPosition(ptrc_pb2.GetPositionRequest(account_id=account, symbol=SYMBOL), timeout=2)
                return got.position.fill_count == 3

            await eventually(sold)
            await asyncio.sleep(0.3)  # the duplicate fill id would have been applied by now
            got = await stub.GetPosition(ptrc_pb2.GetPositionRequest(account_id=account, symbol=SYMBOL), timeout=2)
            p = got.position
            assert (p.quantity.value, p.avg_entry_price.value, p.realized_pnl.value) == ("0.5", "105", "22.5")
            assert (p.fees.value, p.cost_basis.value, p.fill_count, p.version) == ("0.38", "52.5", 3, 3)
            assert p.last_fill_id == sell.fill_id

            live = None
            while live is None:
                msg = await read(stream)
                if msg.HasField("update"):
                    live = msg.update
            assert not live.snapshot and live.position.quantity.value == "0.5"
            stream.cancel()

            report = await stub.Reconcile(ptrc_pb2.ReconcileRequest(account_id=account), timeout=10)
            assert list(report.differences) == [] and report.symbols_checked == 1
            assert report.fills_replayed == 4  # the duplicate fill id is in the log, applied once

            # A new instance (its own durable) rebuilds the identical state from FILLS.
            other = settings_for(account)
            durables.append(other.durable)
            second = compose(other)
            await second.start()
            listed = await stub.ListPositions(ptrc_pb2.ListPositionsRequest(account_id=account), timeout=2)
            rebuilt = second.servicer()
            again = await rebuilt.ListPositions(ptrc_pb2.ListPositionsRequest(account_id=account), None)  # type: ignore[arg-type]
            assert list(again.positions) == list(listed.positions)

        stored = await stored_events(bus, account)
        assert [e.event_id for e in stored] == [f"{account}:{SYMBOL}:{v}" for v in (1, 2, 3)]
        assert [e.fill_id for e in stored] == [buy1.fill_id, buy2.fill_id, sell.fill_id]
        assert stored[-1].position.realized_pnl.value == "22.5"
    finally:
        if second is not None:
            await second.stop()
        await running.stop()
        for durable in durables:
            with contextlib.suppress(Exception):
                await bus.js.delete_consumer("FILLS", durable)
