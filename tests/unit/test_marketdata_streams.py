"""The marketdata gRPC streams in-process (a real grpc.aio server, the hub fed directly, no NATS)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import grpc
import pytest
from trade.marketdata.v1 import marketdata_pb2, marketdata_pb2_grpc
from trade.type.v1 import decimal_pb2, market_data_pb2

from services.marketdata.bootstrap import SERVICE_NAME, build_hub, build_servicer
from services.marketdata.domain.bars import BarRow, Interval
from services.marketdata.domain.book import Delta, Level, Snapshot
from services.marketdata.domain.hub import MarketData
from services.marketdata.settings import MarketDataSettings
from services.runtime.server import Registration, RunningServer, start_server

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class NoBars:
    async def bars(self, symbol: str, interval: Interval, start_ns: int, end_ns: int, limit: int) -> list[BarRow]:
        return []


@dataclass
class Served:
    md: MarketData[Any]
    server: RunningServer
    target: str


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    settings = MarketDataSettings(port=0, heartbeat_interval_s=0.2, trade_queue_size=64, log_json=False)
    md = build_hub(settings)
    servicer = build_servicer(settings, md, NoBars())
    registration = Registration(
        add_to_server=lambda s: marketdata_pb2_grpc.add_MarketDataServiceServicer_to_server(servicer, s),
        service_names=[SERVICE_NAME],
    )
    server = await start_server(settings, registration)
    yield Served(md, server, f"127.0.0.1:{server.port}")
    await server.stop()


async def read(call: Any) -> Any:
    """The next message of a stream (never EOF here)."""
    msg = await call.read()
    assert msg is not grpc.aio.EOF
    return msg


def trade(symbol: str, seq: int) -> market_data_pb2.Trade:
    return market_data_pb2.Trade(symbol=symbol, trade_id=str(seq), sequence=seq, price=decimal_pb2.Decimal(value="1"))


async def test_a_slow_trade_reader_keeps_a_bounded_queue_and_sees_the_drop_counter_move(served: Served) -> None:
    async with grpc.aio.insecure_channel(served.target) as channel:
        stub = marketdata_pb2_grpc.MarketDataServiceStub(channel)
        call = stub.StreamTrades(marketdata_pb2.StreamTradesRequest(symbols=["BTCUSDT"]))
        await read(call)  # first heartbeat: the subscription exists
        (sub,) = served.md.trades.by_symbol["BTCUSDT"].values()
        for n in range(1, 20_001):
            served.md.on_trade(trade("BTCUSDT", n))
            if n % 1000 == 0:
                await asyncio.sleep(0)
        assert len(sub.queue) <= 64
        dropped = 0
        deadline = time.monotonic() + 5
        while dropped == 0 and time.monotonic() < deadline:
            msg = await read(call)
            if msg.HasField("heartbeat"):
                dropped = msg.heartbeat.dropped_count
        assert dropped > 0
        call.cancel()


async def test_book_stream_sends_a_snapshot_then_deltas_chained_by_sequence(served: Served) -> None:
    def lv(p: str, q: str) -> Level:
        return Level(Decimal(p), Decimal(q))

    books = served.md.books
    books.on_snapshot("ETHUSDT", Snapshot(5, (lv("10", "1"),), (lv("11", "1"),)))
    async with grpc.aio.insecure_channel(served.target) as channel:
        stub = marketdata_pb2_grpc.MarketDataServiceStub(channel)
        call = stub.StreamBook(marketdata_pb2.StreamBookRequest(symbol="ETHUSDT", depth=5))
        first = await read(call)
        assert first.HasField("snapshot") and first.snapshot.sequence == 5
        for seq in range(6, 11):
            books.on_delta("ETHUSDT", Delta(seq, seq - 1, (lv("10", str(seq)),), ()))
        last = 5
        while last < 10:
            msg = await read(call)
            if msg.HasField("delta"):
                assert msg.delta.previous_sequence == last
                last = msg.delta.sequence
        call.cancel()


CLIENT = textwrap.dedent(
    """
    import sys, grpc
    from trade.marketdata.v1 import marketdata_pb2, marketdata_pb2_grpc
    stub = marketdata_pb2_grpc.MarketDataServiceStub(grpc.insecure_channel(sys.argv[1]))
    for _ in stub.StreamQuotes(marketdata_pb2.StreamQuotesRequest()):
        print("streaming", flush=True)
    """
)


async def test_a_killed_client_releases_its_subscription_within_a_second(served: Served) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([REPO, os.path.join(REPO, "gen", "python")])}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLIENT, served.target, stdout=asyncio.subprocess.PIPE, env=env
    )
    try:
        assert proc.stdout is not None
        line = await proc.stdout.readline()  # a heartbeat arrived: the stream is live
        assert line.strip() == b"streaming"
        assert served.md.subscriber_counts()["quotes"] == 1
        os.kill(proc.pid, signal.SIGKILL)
        killed = time.monotonic()
        while served.md.subscriber_counts()["quotes"] and time.monotonic() - killed < 1.0:
            await asyncio.sleep(0.01)
        assert served.md.subscriber_counts()["quotes"] == 0
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
