"""The feed against an in-process Binance-format server replaying tests/fixtures/binance: a 429 on the first
snapshot, stale events, a sequence gap, a malformed frame and a dropped connection, ending in the expected book."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from trade.normalizer.v1 import events_pb2
from trade.type.v1 import venue_pb2

from services.feeds.binance.book import DepthSync, OrderBook, decimal_str
from services.feeds.binance.client import USED_WEIGHT_HEADER, BinanceFeed, BinanceRest
from services.feeds.binance.protocol import DepthSnapshot, DepthUpdate, Frame, parse_depth_snapshot, parse_frame
from services.feeds.binance.publisher import frame_message, raw_msg_id, raw_subject, snapshot_message
from services.feeds.binance.ratelimit import Backoff, RestWeightGovernor
from services.feeds.binance.replay import ReplayServer, Scenario
from services.feeds.binance.settings import BinanceFeedSettings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "binance"


class RecordingSink:
    """A FeedSink that keeps what it is handed, in order."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.snapshots: list[DepthSnapshot] = []
        self.in_order: list[Frame | DepthSnapshot] = []

    async def on_frame(self, frame: Frame, receive_time_ns: int) -> None:
        self.frames.append(frame)
        self.in_order.append(frame)

    async def on_snapshot(self, snapshot: DepthSnapshot, body: bytes, receive_time_ns: int) -> None:
        self.snapshots.append(snapshot)
        self.in_order.append(snapshot)


def feed_settings(server: ReplayServer) -> BinanceFeedSettings:
    return BinanceFeedSettings(
        binance_ws_url=server.ws_url,
        binance_rest_url=server.rest_url,
        binance_symbols=("BTCUSDT",),
        binance_backoff_initial_s=0.05,
        binance_backoff_cap_s=0.2,
        binance_heartbeat_s=5.0,
        binance_receive_timeout_s=10.0,
    )


async def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@pytest.fixture
async def server() -> AsyncIterator[ReplayServer]:
    server = ReplayServer(Scenario.load(FIXTURES))
    await server.start()
    yield server
    await server.stop()


async def test_replayed_session_with_gap_and_dropped_connection_ends_with_the_expected_book(
    server: ReplayServer,
) -> None:
    scenario = server.scenario
    sink = RecordingSink()
    feed = BinanceFeed(feed_settings(server), sink)
    task = asyncio.create_task(feed.run())
    try:
        final_id = scenario.expected_final_book["lastUpdateId"]
        await wait_until(lambda: (b := feed.syncs["BTCUSDT"].book) is not None and b.last_update_id >= final_id)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    sync = feed.syncs["BTCUSDT"]
    assert sync.book is not None
    assert sync.book.to_dict() == canonical(scenario.expected_final_book)
    expected = scenario.expected
    assert server.stats.ws_connections == feed.counters.connections == expected["connections"]
    assert server.stats.requested_streams == ["btcusdt@trade", "btcusdt@bookTicker", "btcusdt@depth@100ms"]
    assert server.stats.rate_limited == 1 and server.stats.snapshots_served == expected["snapshots_applied"]
    assert [s.last_update_id for s in sink.snapshots] == [1008, 1029, 1053]
    assert sync.counters.gaps == expected["gaps"]
    assert feed.counters.malformed == expected["malformed"]
    kinds = [f.kind for f in sink.frames]
    assert kinds.count("trade") == expected["trades"]
    assert kinds.count("bookTicker") == expected["book_tickers"]
    assert kinds.count("depth") == expected["depth_frames"]
    # The sink got every well-formed frame unmodified; trades and tickers in wire order.
    sent = [raw for raw in scenario.frames() if b'"e":"trade","s"' not in raw]
    assert sorted(f.raw for f in sink.frames) == sorted(sent)
    assert [f.raw for f in sink.frames if f.kind != "depth"] == [raw for raw in sent if b"depthUpdate" not in raw]


async def test_downstream_can_rebuild_the_book_without_buffering_from_the_published_order(
    server: ReplayServer,
) -> None:
    """The normalizer's contract: after each published snapshot come its stale events, the bridging event and
    contiguous events, so a consumer that only keeps the last snapshot and checks U <= last + 1 never sees a gap."""
    sink = RecordingSink()
    feed = BinanceFeed(feed_settings(server), sink)
    task = asyncio.create_task(feed.run())
    final_id = server.scenario.expected_final_book["lastUpdateId"]
    try:
        await wait_until(lambda: (b := feed.syncs["BTCUSDT"].book) is not None and b.last_update_id >= final_id)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    book: OrderBook | None = None
    for item in sink.in_order:
        if isinstance(item, DepthSnapshot):
            book = OrderBook.from_snapshot(item)
        elif isinstance(item.event, DepthUpdate) and book is not None:
            update = item.event
            if update.final_update_id <= book.last_update_id:
                continue
            assert update.first_update_id <= book.last_update_id + 1, "published order has a gap"
            book.apply(update)
    assert book is not None and book.to_dict() == canonical(server.scenario.expected_final_book)


async def test_the_published_stream_alone_rebuilds_the_same_book_downstream(server: ReplayServer) -> None:
    """What a consumer of md.raw.binance_spot.* sees (frames and accepted snapshots, in order) is enough to
    rebuild the feed's book with the same DepthSync, reconnect included."""
    sink = RecordingSink()
    feed = BinanceFeed(feed_settings(server), sink)
    task = asyncio.create_task(feed.run())
    try:
        await wait_until(
            lambda: (
                len(sink.snapshots) == 3
                and (b := feed.syncs["BTCUSDT"].book) is not None
                and b.last_update_id >= server.scenario.expected_final_book["lastUpdateId"]
            )
        )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    replica = DepthSync("BTCUSDT")
    for item in sink.in_order:
        if isinstance(item, DepthSnapshot):
            replica.on_snapshot(item)
        elif isinstance(item.event, DepthUpdate):
            replica.on_update(item.event)
    assert replica.book is not None and feed.syncs["BTCUSDT"].book is not None
    assert replica.book.to_dict() == feed.syncs["BTCUSDT"].book.to_dict()


def canonical(book: dict[str, object]) -> dict[str, object]:
    """The fixture's Binance-format book with canonical decimal strings, as OrderBook.to_dict() renders it."""

    def side(levels: object) -> list[list[str]]:
        assert isinstance(levels, list)
        return [[decimal_str(Decimal(p)), decimal_str(Decimal(q))] for p, q in levels]

    return {
        "symbol": book["symbol"],
        "lastUpdateId": book["lastUpdateId"],
        "bids": side(book["bids"]),
        "asks": side(book["asks"]),
    }


def test_raw_market_data_wraps_the_frame_bytes_with_its_venue_sequence() -> None:
    scenario = Scenario.load(FIXTURES)
    frame = parse_frame(scenario.frames()[2])
    msg = frame_message(frame, receive_time_ns=123)
    assert msg.venue == venue_pb2.VENUE_BINANCE_SPOT
    assert msg.format == events_pb2.RAW_PAYLOAD_FORMAT_JSON
    assert (msg.symbol, msg.payload, msg.venue_sequence, msg.receive_time_ns) == ("BTCUSDT", frame.raw, 1003, 123)
    assert raw_subject("BTCUSDT") == "md.raw.binance_spot.BTCUSDT"
    assert raw_msg_id("BTCUSDT", frame.kind, frame.venue_sequence) == "binance_spot:BTCUSDT:depth:1003"


def test_a_published_snapshot_carries_the_rest_body_and_its_last_update_id() -> None:
    body = (FIXTURES / "snapshot_1.json").read_bytes()
    msg = snapshot_message(parse_depth_snapshot("BTCUSDT", body), body, receive_time_ns=5)
    assert (msg.payload, msg.venue_sequence) == (body, 1008)


def idle_scenario() -> Scenario:
    """Connections that stay open and silent."""
    return Scenario("BTCUSDT", (), (), rate_limited_first=None, expected_final_book={}, expected={})


async def test_a_connection_is_rotated_before_binance_24h_limit() -> None:
    server = ReplayServer(idle_scenario())
    await server.start()
    settings = feed_settings(server).model_copy(update={"binance_max_connection_age_s": 0.2})
    feed = BinanceFeed(settings, RecordingSink())
    task = asyncio.create_task(feed.run())
    try:
        await wait_until(lambda: server.stats.ws_connections >= 2, timeout_s=5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.stop()
    assert feed.counters.disconnects >= 1


async def test_a_silent_connection_is_dropped_and_reopened() -> None:
    server = ReplayServer(idle_scenario())
    await server.start()
    settings = feed_settings(server).model_copy(update={"binance_receive_timeout_s": 0.2})
    feed = BinanceFeed(settings, RecordingSink())
    task = asyncio.create_task(feed.run())
    try:
        await wait_until(lambda: server.stats.ws_connections >= 2, timeout_s=5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.stop()


async def test_rest_snapshot_retries_server_errors_and_paces_by_the_used_weight_header() -> None:
    responses = [(503, "100"), (200, "4790"), (200, "4840")]
    sleeps: list[float] = []

    async def depth(request: web.Request) -> web.Response:
        status, used_weight = responses.pop(0)
        body = b'{"lastUpdateId":5,"bids":[["1.0","2.0"]],"asks":[]}' if status == 200 else b"{}"
        return web.Response(status=status, body=body, headers={USED_WEIGHT_HEADER: used_weight})

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    app = web.Application()
    app.router.add_get("/api/v3/depth", depth)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            rest = BinanceRest(
                session,
                f"http://127.0.0.1:{port}",
                RestWeightGovernor(),
                Backoff(0.5, 1.0, rng=random.Random(3)),
                clock=lambda: 600.0,  # the start of a minute
                sleep=fake_sleep,
            )
            first, _ = await rest.depth_snapshot("BTCUSDT", 1000)
            assert first.last_update_id == 5 and len(sleeps) == 1 and sleeps[0] <= 0.5  # backoff after the 503
            await rest.depth_snapshot("BTCUSDT", 1000)
    finally:
        await runner.cleanup()
    assert sleeps[1] == pytest.approx(60.0)  # 4790 + 50 > 80% of 6000: wait for the next minute
