"""pnl against the real NATS: fills of a test-unique account in a test-unique symbol, marked by quotes published
on md.quote.<symbol>, move unrealized PnL (GetPnl and StreamPnl); fills publish intraday snapshots on PNL; a new
instance rebuilds the same PnL from FILLS and primes its mark from the last quote stored in MD."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from trade.normalizer.v1 import events_pb2 as md_events_pb2
from trade.pnl.v1 import events_pb2, pnl_pb2, pnl_pb2_grpc
from trade.type.v1 import decimal_pb2, fill_pb2, market_data_pb2, order_pb2, venue_pb2

from services.pnl.adapters.consumer import JetStreamFillLog
from services.pnl.bootstrap import Pnl, build, compose
from services.pnl.settings import PnlSettings
from services.runtime.bus import Bus
from services.runtime.server import start_server
from services.runtime.streams import FILLS, MARKET_DATA, PNL
from tests.support.marketdata import md_message

pytestmark = pytest.mark.usefixtures("mesh")


def D(value: str) -> decimal_pb2.Decimal:
    return decimal_pb2.Decimal(value=value)


def make_fill(account: str, symbol: str, n: int, side: order_pb2.Side.ValueType, qty: str, price: str) -> fill_pb2.Fill:
    return fill_pb2.Fill(
        fill_id=f"prism:{account}:T{n}", account_id=account, symbol=symbol, side=side, price=D(price),
        quantity=D(qty), fee=D("0.1"), fee_currency="USDT", strategy_id="strat-1", event_time_ns=time.time_ns(),
    )  # fmt: skip


async def publish_fill(bus: Bus, fill: fill_pb2.Fill) -> None:
    await bus.publish(f"fills.{fill.account_id}.{fill.symbol}", fill.SerializeToString(), fill.fill_id)


def quote_event(symbol: str, seq: int, bid: str, ask: str) -> md_events_pb2.MarketDataEvent:
    return md_events_pb2.MarketDataEvent(
        event_id=f"quote:{symbol}:{seq}",
        publish_time_ns=time.time_ns(),
        quote=market_data_pb2.Quote(
            symbol=symbol, venue=venue_pb2.VENUE_PRISM, bid_price=D(bid), bid_size=D("1"), ask_price=D(ask),
            ask_size=D("1"), sequence=seq, event_time_ns=time.time_ns(),
        ),
    )  # fmt: skip


async def publish_quotes(bus: Bus, *events: md_events_pb2.MarketDataEvent) -> None:
    await bus.publish(f"md.quote.{events[0].quote.symbol}", md_message(*events), f"{events[0].event_id}+{len(events)}")


async def read_snapshot(stream: Any, limit_s: float = 5.0) -> events_pb2.PnlSnapshot:
    deadline = time.monotonic() + limit_s
    while True:
        msg = await asyncio.wait_for(stream.read(), max(deadline - time.monotonic(), 0.01))
        assert isinstance(msg, pnl_pb2.StreamPnlResponse)
        if msg.HasField("snapshot"):
            return msg.snapshot


async def eventually(check: Any, limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@pytest.fixture
async def bus() -> AsyncIterator[Bus]:
    bus = Bus(PnlSettings().nats_url, "test-pnl")
    await bus.connect()
    await bus.ensure_streams([FILLS, PNL, MARKET_DATA])
    yield bus
    await bus.close()


def settings_for(account: str, symbol: str) -> PnlSettings:
    return PnlSettings(
        port=0,
        fills_subject=f"fills.{account}.>",
        durable=f"test-pnl-{uuid.uuid4().hex[:10]}",
        quote_subject=f"md.quote.{symbol}",
        pnl_subject=f"pnl.{account}",
        end_of_day=False,
        log_json=False,
        log_level="WARNING",
    )


async def stored_snapshots(bus: Bus, account: str) -> list[events_pb2.PnlSnapshot]:
    sub = await bus.js.subscribe(f"pnl.{account}", stream="PNL", ordered_consumer=True)
    out = []
    try:
        while True:
            msg = await sub.next_msg(timeout=5)
            out.append(events_pb2.PnlSnapshot.FromString(msg.data))
            if not msg.metadata.num_pending:
                return out
    finally:
        await sub.unsubscribe()


async def test_quotes_mark_unrealized_pnl_and_fills_realize_it_net_of_fees(bus: Bus) -> None:
    account = f"test-pnl-{uuid.uuid4().hex[:10]}"
    symbol = f"TEST{uuid.uuid4().hex[:8].upper()}USDT"
    await publish_fill(bus, make_fill(account, symbol, 1, order_pb2.SIDE_BUY, "1", "100"))
    await publish_fill(bus, make_fill(account, symbol, 2, order_pb2.SIDE_BUY, "1", "110"))

    settings = settings_for(account, symbol)
    durables = [settings.durable]
    running = await start_server(settings, await build(settings))
    second: Pnl | None = None
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = pnl_pb2_grpc.PnlServiceStub(channel)

            async def pnl(sym: str = "") -> Any:
                got = await stub.GetPnl(pnl_pb2.GetPnlRequest(account_id=account, symbol=sym), timeout=2)
                return got.total

            before = await pnl(symbol)
            assert (before.position_quantity.value, before.unrealized_pnl.value, before.fees.value) == ("2", "0", "0.2")
            assert not before.HasField("mark_price")

            stream = stub.StreamPnl(pnl_pb2.StreamPnlRequest(account_id=account, min_interval_ms=250), timeout=20)
            first = await read_snapshot(stream)
            assert first.total.net_pnl.value == "-0.2" and first.kind == events_pb2.PNL_SNAPSHOT_KIND_INTRADAY

            # One message, two quotes: the last one marks (mid 115: 2 x (115 - 105)).
            await publish_quotes(bus, quote_event(symbol, 1, "99", "101"), quote_event(symbol, 2, "114", "116"))

            async def marked() -> bool:
                return bool((await pnl(symbol)).unrealized_pnl.value == "20")

            await eventually(marked)
            total = await pnl(symbol)
            assert (total.mark_price.value, total.net_pnl.value, total.currency) == ("115", "19.8", "USDT")
            streamed = await read_snapshot(stream)
            assert streamed.by_symbol[0].mark_price.value == "115" and streamed.total.unrealized_pnl.value == "20"

            await publish_fill(bus, make_fill(account, symbol, 3, order_pb2.SIDE_SELL, "1.5", "120"))
            after_fill = await read_snapshot(stream)
            assert after_fill.total.realized_pnl.value == "22.5"  # (120 - 105) x 1.5
            assert after_fill.total.fees.value == "0.3"
            assert after_fill.total.unrealized_pnl.value == "5"  # 0.5 x (115 - 105)
            assert after_fill.total.net_pnl.value == "27.2"
            by_strategy = (await stub.GetPnl(pnl_pb2.GetPnlRequest(account_id=account), timeout=2)).by_strategy
            assert [(p.strategy_id, p.net_pnl.value) for p in by_strategy] == [("strat-1", "27.2")]
            stream.cancel()

            # A new instance rebuilds from FILLS and takes its mark from the last quote of the last message in MD.
            other = settings_for(account, symbol)
            durables.append(other.durable)
            second = compose(other)
            await second.start()
            rebuilt = second.service.ledger.breakdown(account, symbol, "", time.time_ns()).total
            assert str(rebuilt.net_pnl.normalize()) == "27.2" and rebuilt.mark_price == 115

        snapshots = await stored_snapshots(bus, account)
        fills = [s.fill_id for s in snapshots]
        assert fills[-1] == f"prism:{account}:T3" and len(set(s.snapshot_id for s in snapshots)) == len(snapshots)
        assert snapshots[-1].total.realized_pnl.value == "22.5"
    finally:
        if second is not None:
            await second.stop()
        await running.stop()
        for durable in durables:
            with contextlib.suppress(Exception):
                await bus.js.delete_consumer("FILLS", durable)


async def test_the_fill_log_gives_one_accounts_fills_in_log_order_with_their_sequences(bus: Bus) -> None:
    account, other = f"TEST-PNL-{uuid.uuid4().hex[:8]}", f"TEST-PNL-{uuid.uuid4().hex[:8]}"
    symbol = f"TEST{uuid.uuid4().hex[:6].upper()}USDT"
    fills = [
        make_fill(account, symbol, 1, order_pb2.SIDE_BUY, "1", "100"),
        make_fill(other, symbol, 2, order_pb2.SIDE_BUY, "1", "100"),
        make_fill(account, symbol, 3, order_pb2.SIDE_SELL, "1", "120"),
    ]
    for f in fills:
        await publish_fill(bus, f)
    end = int((await bus.js.stream_info("FILLS")).state.last_seq)
    log = JetStreamFillLog(bus, "FILLS", "fills.{account}.>")
    got = await log.fills_of(account, end)
    assert [f.fill_id for f in got] == [fills[0].fill_id, fills[2].fill_id]
    assert got[0].sequence < got[1].sequence <= end
    assert [f.fill_id for f in await log.fills_of(account, got[0].sequence)] == [fills[0].fill_id]
