"""The Binance feed publishing a replayed session to the mesh's real NATS (JetStream MD_RAW) and reading it back."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from trade.normalizer.v1 import events_pb2
from trade.type.v1 import venue_pb2

from services.feeds.binance.client import BinanceFeed
from services.feeds.binance.protocol import parse_frame
from services.feeds.binance.publisher import NatsRawSink
from services.feeds.binance.replay import ReplayServer, Scenario
from services.feeds.binance.settings import BinanceFeedSettings
from services.runtime.bus import Bus
from services.runtime.streams import MARKET_DATA_RAW

pytestmark = pytest.mark.usefixtures("mesh")

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "binance"
# The fixtures' BTCUSDT renamed, so the replay never mixes fixture prices into the mesh's live BTCUSDT data.
SYMBOL = "TESTBTCUSDT"


@pytest.fixture
def scenario_dir(tmp_path: Path) -> Path:
    for src in FIXTURES.iterdir():
        text = src.read_text().replace("BTCUSDT", SYMBOL).replace("btcusdt", SYMBOL.lower())
        (tmp_path / src.name).write_text(text)
    return tmp_path


class AckRecordingBus:
    """The real bus, remembering the stream sequence of every publish (a duplicate's ack names the original)."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.acks: list[tuple[str, str | None, int]] = []

    async def publish(
        self,
        subject: str,
        payload: bytes,
        msg_id: str | None = None,
        headers: dict[str, str] | None = None,
        timeout_s: float = 5.0,
    ) -> Any:
        ack = await self.bus.publish(subject, payload, msg_id=msg_id, headers=headers, timeout_s=timeout_s)
        self.acks.append((subject, msg_id, ack.seq))
        return ack


@pytest.fixture
async def bus() -> AsyncIterator[Bus]:
    bus = Bus(BinanceFeedSettings().nats_url, "test-binance-feed")
    await bus.connect()
    await bus.ensure_streams([MARKET_DATA_RAW])
    yield bus
    await bus.close()


async def test_replayed_binance_frames_land_on_md_raw_as_raw_market_data(bus: Bus, scenario_dir: Path) -> None:
    scenario = Scenario.load(scenario_dir)
    server = ReplayServer(scenario)
    await server.start()
    recorder = AckRecordingBus(bus)
    sink = NatsRawSink(recorder)
    settings = BinanceFeedSettings(
        binance_ws_url=server.ws_url,
        binance_rest_url=server.rest_url,
        binance_symbols=(SYMBOL,),
        binance_backoff_initial_s=0.05,
        binance_backoff_cap_s=0.2,
    )
    feed = BinanceFeed(settings, sink)
    tasks = [asyncio.create_task(sink.run()), asyncio.create_task(feed.run())]
    try:
        deadline = time.monotonic() + 15
        final_id = scenario.expected_final_book["lastUpdateId"]
        while (book := feed.syncs[SYMBOL].book) is None or book.last_update_id < final_id:
            assert time.monotonic() < deadline, "feed did not reach the final book"
            await asyncio.sleep(0.02)
        await asyncio.wait_for(sink.drain(), timeout=10)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.stop()

    sent = [raw for raw in scenario.frames() if b'"e":"trade","s"' not in raw]  # minus the malformed frame
    assert len(recorder.acks) == len(sent) + 3  # every frame plus the three accepted snapshots
    stored: list[events_pb2.RawMarketData] = []
    for subject, msg_id, seq in recorder.acks:
        msg = await bus.js.get_msg(MARKET_DATA_RAW.name, seq)
        assert msg.subject == subject == f"md.raw.binance_spot.{SYMBOL}"
        assert msg.headers is not None and msg.headers.get("Nats-Msg-Id") == msg_id
        assert msg.data is not None
        stored.append(events_pb2.RawMarketData.FromString(msg.data))
    frames = [m for m in stored if m.payload.startswith(b'{"stream"')]
    assert sorted(m.payload for m in frames) == sorted(sent)
    for m in frames:
        assert m.venue == venue_pb2.VENUE_BINANCE_SPOT and m.symbol == SYMBOL
        assert m.format == events_pb2.RAW_PAYLOAD_FORMAT_JSON
        assert m.venue_sequence == parse_frame(m.payload).venue_sequence
    snapshots = [m for m in stored if not m.payload.startswith(b'{"stream"')]
    assert [m.venue_sequence for m in snapshots] == [1008, 1029, 1053]


async def test_the_entry_point_runs_the_feed_into_nats_and_stops_cleanly_on_sigterm(scenario_dir: Path) -> None:
    server = ReplayServer(Scenario.load(scenario_dir))
    await server.start()
    env = {
        **os.environ,
        "TRADE_BINANCE_ENABLED": "1",
        "TRADE_BINANCE_WS_URL": server.ws_url,
        "TRADE_BINANCE_REST_URL": server.rest_url,
        "TRADE_BINANCE_SYMBOLS": f'["{SYMBOL}"]',
        "TRADE_BINANCE_BACKOFF_INITIAL_S": "0.05",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.feeds.binance", env=env, stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    lines: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(15):
            while not any(line.get("last_update_id") == 1053 for line in lines):
                lines.append(json.loads(await proc.stdout.readline()))
        await asyncio.sleep(1.0)  # the last frames follow the third snapshot at once
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            lines += [json.loads(line) for line in (await proc.stdout.read()).splitlines()]
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await server.stop()
    stopped = [line for line in lines if line["event"] == "binance.stopped"]
    assert stopped and stopped[0]["published"] == len(Scenario.load(FIXTURES).frames()) - 1 + 3
