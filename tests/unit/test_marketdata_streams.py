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
from services.marketdata.servicer import add_to_server
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
    settings = MarketDataSettings(
        port=0, heartbeat_interval_s=0.2, trade_queue_size=64, batched_queue_updates=64, log_json=False
    )
    md = build_hub(settings)
    servicer = build_servicer(settings, md, NoBars())
    registration = Registration(
        add_to_server=lambda s: add_to_server(servicer, s),
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
    for _ in stub.StreamQuotes(marketdata_pb2.StreamQuotesRequest(max_batch=int(sys.argv[2]))):
        print("streaming", flush=True)
    """
)


@pytest.mark.parametrize("max_batch", [0, 50])
async def test_a_killed_client_releases_its_subscription_within_a_second(served: Served, max_batch: int) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([REPO, os.path.join(REPO, "gen", "python")])}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLIENT, served.target, str(max_batch), stdout=asyncio.subprocess.PIPE, env=env
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
        assert not served.md.quotes.groups and not served.md.quotes.wildcard
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def test_batched_and_unbatched_trade_streams_side_by_side_get_every_trade_in_order(served: Served) -> None:
    async with grpc.aio.insecure_channel(served.target) as channel:
        stub = marketdata_pb2_grpc.MarketDataServiceStub(channel)
        single = stub.StreamTrades(marketdata_pb2.StreamTradesRequest(symbols=["SOLUSDT"]))
        batched = [
            stub.StreamTrades(marketdata_pb2.StreamTradesRequest(symbols=["SOLUSDT"], max_batch=40, batch_window_ms=20))
            for _ in range(3)
        ]
        for call in (single, *batched):
            assert (await read(call)).HasField("heartbeat")  # subscribed
        assert len(served.md.trades.groups) == 1  # the three batched streams share one group
        for n in range(1, 251):
            served.md.on_trade(trade("SOLUSDT", n))
            if n % 50 == 0:
                await asyncio.sleep(0.02)  # within the queue bound of 64 (the fixture's trade_queue_size)

        async def collect(call: Any) -> tuple[list[int], list[int]]:
            seqs: list[int] = []
            sizes: list[int] = []
            while len(seqs) < 250:
                msg = await read(call)
                kind = msg.WhichOneof("payload")
                if kind == "trade":
                    seqs.append(msg.trade.sequence)
                    sizes.append(1)
                elif kind == "batch":
                    seqs += [t.sequence for t in msg.batch.trades]
                    sizes.append(len(msg.batch.trades))
            return seqs, sizes

        results = await asyncio.wait_for(asyncio.gather(*(collect(c) for c in (single, *batched))), 5)
        for seqs, _ in results:
            assert seqs == list(range(1, 251))
        assert set(results[0][1]) == {1}  # not opted in: one trade per message, exactly as before
        for _, sizes in results[1:]:
            assert max(sizes) == 40 and len(sizes) < 250  # full batches go at once, the rest after 20 ms
        for call in (single, *batched):
            call.cancel()


async def test_a_slow_batched_trade_reader_stays_bounded_and_sees_the_drop_counter_match_its_gaps(
    served: Served,
) -> None:
    async with grpc.aio.insecure_channel(served.target) as channel:
        stub = marketdata_pb2_grpc.MarketDataServiceStub(channel)
        call = stub.StreamTrades(marketdata_pb2.StreamTradesRequest(symbols=["BTCUSDT"], max_batch=16))
        await read(call)
        (entry,) = served.md.trades.groups.values()
        (member,) = entry.queue.members.values()
        for n in range(1, 20_001):
            served.md.on_trade(trade("BTCUSDT", n))
            if n % 1000 == 0:
                await asyncio.sleep(0)
                assert len(member.queue) <= 64
        served.md.trades.groups[next(iter(served.md.trades.groups))].queue.flush()
        received: list[int] = []
        dropped = -1
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (not received or received[-1] < 20_000 or dropped < 0):
            msg = await read(call)
            if msg.HasField("batch"):
                received += [t.sequence for t in msg.batch.trades]
            elif msg.HasField("heartbeat") and received and received[-1] == 20_000:
                dropped = msg.heartbeat.dropped_count
        assert received == sorted(received) and received[-1] == 20_000
        assert dropped > 0 and dropped == 20_000 - len(received)
        call.cancel()


async def test_a_batched_book_stream_sends_a_snapshot_then_batches_of_chained_deltas(served: Served) -> None:
    def lv(p: str, q: str) -> Level:
        return Level(Decimal(p), Decimal(q))

    books = served.md.books
    books.on_snapshot("SOLUSDT", Snapshot(5, (lv("10", "1"),), (lv("11", "1"),)))
    async with grpc.aio.insecure_channel(served.target) as channel:
        stub = marketdata_pb2_grpc.MarketDataServiceStub(channel)
        call = stub.StreamBook(marketdata_pb2.StreamBookRequest(symbol="SOLUSDT", depth=5, max_batch=10))
        first = await read(call)
        assert first.HasField("snapshot") and first.snapshot.sequence == 5
        for seq in range(6, 31):
            books.on_delta("SOLUSDT", Delta(seq, seq - 1, (lv("10", str(seq)),), ()))
        last, batches = 5, 0
        while last < 30:
            msg = await read(call)
            assert not msg.HasField("delta")
            if msg.HasField("deltas"):
                batches += 1
                assert 1 <= len(msg.deltas.deltas) <= 10
                for d in msg.deltas.deltas:
                    assert d.previous_sequence == last
                    last = d.sequence
        assert batches >= 3
        call.cancel()


async def test_a_batch_window_above_a_second_is_rejected_with_a_field_violation(served: Served) -> None:
    async with grpc.aio.insecure_channel(served.target) as channel:
        stub = marketdata_pb2_grpc.MarketDataServiceStub(channel)
        call = stub.StreamTrades(marketdata_pb2.StreamTradesRequest(max_batch=10, batch_window_ms=1001))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call.read()
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def quote(symbol: str, seq: int) -> market_data_pb2.Quote:
    return market_data_pb2.Quote(symbol=symbol, sequence=seq, bid_price=decimal_pb2.Decimal(value="1"))


async def test_a_batched_quote_stream_starts_with_the_latest_quotes_then_one_quote_per_symbol_per_window(
    served: Served,
) -> None:
    served.md.on_quote(quote("BTCUSDT", 7))
    served.md.on_quote(quote("ETHUSDT", 3))
    async with grpc.aio.insecure_channel(served.target) as channel:
        stub = marketdata_pb2_grpc.MarketDataServiceStub(channel)
        request = marketdata_pb2.StreamQuotesRequest(symbols=["BTCUSDT", "ETHUSDT"], max_batch=10, batch_window_ms=50)
        call = stub.StreamQuotes(request)
        first = await read(call)
        assert [(q.symbol, q.sequence) for q in first.batch.quotes] == [("BTCUSDT", 7), ("ETHUSDT", 3)]
        for seq in range(8, 18):
            served.md.on_quote(quote("BTCUSDT", seq))  # within one 50 ms window
        msg = await read(call)
        while not msg.HasField("batch"):
            msg = await read(call)
        assert [(q.symbol, q.sequence) for q in msg.batch.quotes] == [("BTCUSDT", 17)]
        msg = await read(call)
        while not msg.HasField("heartbeat"):
            msg = await read(call)
        assert msg.heartbeat.conflated_count == 9
        call.cancel()
