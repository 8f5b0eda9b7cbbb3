"""Market data through the edge with a viewer token: sequenced quotes, trades and books; slow and vanished clients.

The canonical events are published to NATS (md.*.<test symbol>) by the test itself, so the tests do not depend on
a venue feed running; each test uses its own symbol.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from trade.marketdata.v1 import marketdata_pb2, marketdata_pb2_grpc
from trade.normalizer.v1 import events_pb2
from trade.type.v1 import decimal_pb2, market_data_pb2, venue_pb2

from mesh import control
from services.runtime.bus import Bus
from services.runtime.settings import ServiceSettings
from tests.support.edge import EDGE, bearer, token_for
from tests.support.marketdata import md_message

REPO = Path(__file__).resolve().parents[2]
MD_LOG = REPO / "var" / "log" / "marketdata.log"


@pytest.fixture(scope="module")
def viewer(edge: grpc.Channel) -> tuple[tuple[str, str], ...]:
    return bearer(token_for(edge, "viewer"))


@pytest.fixture
async def bus() -> AsyncIterator[Bus]:
    bus = Bus(ServiceSettings().nats_url, "test-marketdata")
    await bus.connect()
    yield bus
    await bus.close()


@pytest.fixture
async def stub() -> AsyncIterator[marketdata_pb2_grpc.MarketDataServiceStub]:
    async with grpc.aio.insecure_channel(EDGE) as channel:
        yield marketdata_pb2_grpc.MarketDataServiceStub(channel)


def symbol() -> str:
    return f"TSM{uuid.uuid4().hex[:8].upper()}"


def dec(v: str) -> decimal_pb2.Decimal:
    return decimal_pb2.Decimal(value=v)


def level(price: str, qty: str) -> market_data_pb2.BookLevel:
    return market_data_pb2.BookLevel(price=dec(price), quantity=dec(qty))


async def publish(bus: Bus, event: events_pb2.MarketDataEvent, subject: str) -> None:
    await bus.nc.publish(subject, md_message(event))


def quote_event(sym: str, seq: int) -> events_pb2.MarketDataEvent:
    q = market_data_pb2.Quote(
        symbol=sym,
        venue=venue_pb2.VENUE_PRISM,
        bid_price=dec(f"{100 + seq}"),
        bid_size=dec("1"),
        ask_price=dec(f"{101 + seq}"),
        ask_size=dec("1"),
        sequence=seq,
        event_time_ns=time.time_ns(),
    )
    return events_pb2.MarketDataEvent(event_id=f"quote:{sym}:{seq}", quote=q)


def trade_event(sym: str, seq: int) -> events_pb2.MarketDataEvent:
    t = market_data_pb2.Trade(
        symbol=sym,
        venue=venue_pb2.VENUE_PRISM,
        trade_id=str(seq),
        price=dec("100"),
        quantity=dec("1"),
        sequence=seq,
        event_time_ns=time.time_ns(),
    )
    return events_pb2.MarketDataEvent(event_id=f"trade:{sym}:{seq}", trade=t)


async def read(call: Any) -> Any:
    """The next message of a stream within 10 s (never EOF here)."""
    msg = await asyncio.wait_for(call.read(), 10)
    assert msg is not grpc.aio.EOF
    return msg


async def first_heartbeat(call: Any) -> None:
    """The server writes a heartbeat every second: after the first one the subscription surely exists."""
    while not (await read(call)).HasField("heartbeat"):
        pass


async def test_quotes_arrive_through_the_edge_with_increasing_sequences(stub, viewer, bus: Bus) -> None:  # type: ignore[no-untyped-def]
    sym = symbol()
    call = stub.StreamQuotes(marketdata_pb2.StreamQuotesRequest(symbols=[sym]), metadata=viewer)
    await first_heartbeat(call)
    for seq in range(1, 21):
        await publish(bus, quote_event(sym, seq), f"md.quote.{sym}")
        await asyncio.sleep(0.005)
    seqs: list[int] = []
    while not seqs or seqs[-1] < 20:
        msg = await read(call)
        if msg.HasField("quote"):
            assert msg.quote.symbol == sym
            seqs.append(msg.quote.sequence)
    assert seqs == sorted(set(seqs)) and seqs[-1] == 20
    call.cancel()


async def test_trades_arrive_through_the_edge_with_increasing_sequences(stub, viewer, bus: Bus) -> None:  # type: ignore[no-untyped-def]
    sym = symbol()
    call = stub.StreamTrades(marketdata_pb2.StreamTradesRequest(symbols=[sym]), metadata=viewer)
    await first_heartbeat(call)
    for first in range(1, 51, 5):  # 5 trades per MD message, as the normalizer groups a busy feed
        await bus.nc.publish(f"md.trade.{sym}", md_message(*(trade_event(sym, s) for s in range(first, first + 5))))
    seqs: list[int] = []
    while len(seqs) < 50:
        msg = await read(call)
        if msg.HasField("trade"):
            seqs.append(msg.trade.sequence)
    assert seqs == list(range(1, 51))
    call.cancel()


async def test_batched_trades_arrive_through_the_edge_in_order_beside_an_unbatched_stream(
    stub: Any, viewer: tuple[tuple[str, str], ...], bus: Bus
) -> None:
    sym = symbol()
    single = stub.StreamTrades(marketdata_pb2.StreamTradesRequest(symbols=[sym]), metadata=viewer)
    batched = stub.StreamTrades(
        marketdata_pb2.StreamTradesRequest(symbols=[sym], max_batch=50, batch_window_ms=10), metadata=viewer
    )
    await asyncio.gather(first_heartbeat(single), first_heartbeat(batched))
    for seq in range(1, 201):
        await publish(bus, trade_event(sym, seq), f"md.trade.{sym}")
    single_seqs: list[int] = []
    while len(single_seqs) < 200:
        msg = await read(single)
        assert msg.WhichOneof("payload") in ("trade", "heartbeat")
        if msg.HasField("trade"):
            single_seqs.append(msg.trade.sequence)
    batched_seqs: list[int] = []
    messages = 0
    while len(batched_seqs) < 200:
        msg = await read(batched)
        assert msg.WhichOneof("payload") in ("batch", "heartbeat")
        if msg.HasField("batch"):
            messages += 1
            batched_seqs += [t.sequence for t in msg.batch.trades]
    assert single_seqs == batched_seqs == list(range(1, 201))
    assert messages < 200
    single.cancel()
    batched.cancel()


async def test_book_stream_starts_with_a_snapshot_then_chained_deltas(stub, viewer, bus: Bus) -> None:  # type: ignore[no-untyped-def]
    sym = symbol()
    snap = market_data_pb2.BookSnapshot(
        symbol=sym,
        venue=venue_pb2.VENUE_PRISM,
        sequence=1,
        bids=[level("100", "1"), level("99", "1")],
        asks=[level("101", "1")],
    )
    await publish(bus, events_pb2.MarketDataEvent(event_id=f"snapshot:{sym}:1", book_snapshot=snap), f"md.book.{sym}")
    await asyncio.sleep(0.2)
    call = stub.StreamBook(marketdata_pb2.StreamBookRequest(symbol=sym, depth=10), metadata=viewer)
    first = await read(call)
    while first.HasField("heartbeat"):  # the book may reach the server a moment after the stream opened
        first = await read(call)
    assert first.HasField("snapshot") and first.snapshot.sequence == 1
    assert [lvl.price.value for lvl in first.snapshot.bids] == ["100", "99"]
    for seq in range(2, 31):
        delta = market_data_pb2.BookDelta(
            symbol=sym, sequence=seq, previous_sequence=seq - 1, bids=[level("100", str(seq))]
        )
        await publish(bus, events_pb2.MarketDataEvent(event_id=f"book:{sym}:{seq}", book_delta=delta), f"md.book.{sym}")
    held = first.snapshot.sequence
    while held < 30:
        msg = await read(call)
        if msg.HasField("delta"):
            assert msg.delta.previous_sequence == held  # no gap for a client that keeps up
            assert msg.delta.sequence > held
            held = msg.delta.sequence
    call.cancel()
    snapshot = await stub.GetSnapshot(marketdata_pb2.GetSnapshotRequest(symbol=sym, depth=1), metadata=viewer)
    assert snapshot.book.sequence == 30 and snapshot.book.bids[0].quantity.value == "30"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_a_slow_reader_keeps_server_memory_bounded_and_sees_drop_counters(stub, viewer, bus: Bus) -> None:  # type: ignore[no-untyped-def]
    sym = symbol()
    pid = control.pid("marketdata")
    call = stub.StreamTrades(marketdata_pb2.StreamTradesRequest(symbols=[sym]), metadata=viewer)
    await first_heartbeat(call)
    before = rss_kib(pid)
    padding = "x" * 800  # ~900 bytes per trade: 20k trades = ~18 MB offered to a client that does not read
    for seq in range(1, 20_001):
        ev = trade_event(sym, seq)
        ev.trade.trade_id = f"{seq}-{padding}"
        await bus.nc.publish(f"md.trade.{sym}", md_message(ev))
        if seq % 5000 == 0:
            await bus.nc.flush()
    await asyncio.sleep(3)  # let the server take them all in while the client is not reading
    grown_kib = rss_kib(pid) - before
    dropped = 0
    deadline = time.monotonic() + 30
    while dropped == 0 and time.monotonic() < deadline:
        msg = await read(call)
        if msg.HasField("heartbeat"):
            dropped = msg.heartbeat.dropped_count
    call.cancel()
    print(f"slow reader: server RSS grew {grown_kib} KiB, dropped={dropped}")
    assert dropped > 0
    assert grown_kib < 12 * 1024  # well below the ~18 MB offered


CLIENT = textwrap.dedent(
    """
    import sys, grpc
    from trade.marketdata.v1 import marketdata_pb2, marketdata_pb2_grpc
    stub = marketdata_pb2_grpc.MarketDataServiceStub(grpc.insecure_channel(sys.argv[1]))
    md = (("authorization", "Bearer " + sys.argv[3]),)
    for _ in stub.StreamQuotes(marketdata_pb2.StreamQuotesRequest(symbols=[sys.argv[2]]), metadata=md):
        print("streaming", flush=True)
    """
)


def log_events(event: str) -> list[dict[str, object]]:
    out = []
    for line in MD_LOG.read_text(errors="replace").splitlines()[-2000:]:
        if f'"{event}"' in line:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


async def test_a_killed_client_has_its_server_side_stream_released_within_a_second(edge: grpc.Channel) -> None:
    """Evidence: marketdata logs `marketdata.stream_released` (with the live subscriber counts) from the stream's
    `finally`, i.e. when its task and queue are gone; the test reads that line from the service's log."""
    sym = symbol()
    token = token_for(edge, "viewer")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "gen" / "python")])}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLIENT, EDGE, sym, token, stdout=asyncio.subprocess.PIPE, env=env
    )
    try:
        assert proc.stdout is not None
        assert (await proc.stdout.readline()).strip() == b"streaming"
        opened = [e for e in log_events("marketdata.stream_opened") if e.get("symbols") == [sym]]
        assert len(opened) == 1
        stream_id = opened[0]["stream_id"]
        os.kill(proc.pid, signal.SIGKILL)
        killed = time.time()
        released: list[dict[str, object]] = []
        while not released and time.time() - killed < 3:
            await asyncio.sleep(0.05)
            released = [
                e
                for e in log_events("marketdata.stream_released")
                if e.get("stream_id") == stream_id and str(e["timestamp"]) >= str(opened[0]["timestamp"])
            ]
        assert released, "the server never released the stream"
        at = datetime.fromisoformat(str(released[0]["timestamp"]).replace("Z", "+00:00")).timestamp()
        print(f"killed client released after {(at - killed) * 1000:.0f} ms")
        assert at - killed < 1.0
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def test_instruments_and_bars_are_served_through_the_edge(stub, viewer) -> None:  # type: ignore[no-untyped-def]
    listed = await stub.ListInstruments(marketdata_pb2.ListInstrumentsRequest(page_size=2), metadata=viewer)
    assert [i.symbol for i in listed.instruments] == ["BTCUSDT", "ETHUSDT"] and listed.next_page_token
    rest = await stub.ListInstruments(
        marketdata_pb2.ListInstrumentsRequest(page_size=2, page_token=listed.next_page_token), metadata=viewer
    )
    assert [(i.symbol, i.tick_size.value, i.lot_size.value) for i in rest.instruments] == [("SOLUSDT", "0.01", "0.001")]
    bars = await stub.GetBars(
        marketdata_pb2.GetBarsRequest(symbol=symbol(), interval=market_data_pb2.BAR_INTERVAL_FIVE_MINUTES),
        metadata=viewer,
    )
    assert list(bars.bars) == [] and not bars.next_page_token
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetBars(marketdata_pb2.GetBarsRequest(symbol="BTCUSDT"), metadata=viewer)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
