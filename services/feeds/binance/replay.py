"""A local Binance-compatible server (WebSocket combined stream + REST depth) that replays a scripted scenario.

For tests and offline runs (there is no internet here): point ``TRADE_BINANCE_WS_URL`` / ``TRADE_BINANCE_REST_URL``
at it. A scenario directory (see tests/fixtures/binance/scenario.json) lists, per WebSocket connection, the frames
to send in order, plus directives:

- ``{"directive": "await_snapshots", "count": n}``: pause the stream until n REST snapshots have been served;
- ``{"directive": "drop"}``: abort the TCP connection (no close frame), as a network failure would.

REST ``GET /api/v3/depth`` serves the scenario's snapshots in order (the last one repeats), with an
``X-MBX-USED-WEIGHT-1M`` header; optionally the first request is answered 429 with ``Retry-After``.
After its scripted frames a connection stays open and idle; connections beyond the script get no frames.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from services.feeds.binance.ratelimit import parse_retry_after


@dataclass(frozen=True)
class Scenario:
    """A replay script loaded from a fixture directory."""

    symbol: str
    connections: tuple[tuple[dict[str, Any], ...], ...]
    snapshots: tuple[bytes, ...]
    rate_limited_first: tuple[int, str] | None
    expected_final_book: dict[str, Any]
    expected: dict[str, Any]

    @classmethod
    def load(cls, directory: Path) -> Scenario:
        doc = json.loads((directory / "scenario.json").read_text())
        limited = doc.get("rest_rate_limited_first")
        return cls(
            symbol=doc["symbol"],
            connections=tuple(tuple(json.loads((directory / name).read_text())) for name in doc["connections"]),
            snapshots=tuple((directory / name).read_bytes() for name in doc["snapshots"]),
            rate_limited_first=(int(limited["status"]), str(limited["retry_after"])) if limited else None,
            expected_final_book=json.loads((directory / doc["expected_final_book"]).read_text()),
            expected=doc.get("expected", {}),
        )

    def frames(self) -> list[bytes]:
        """Every frame the server sends, as the bytes it sends (directives excluded)."""
        return [encode_frame(item) for conn in self.connections for item in conn if "directive" not in item]


def encode_frame(item: dict[str, Any]) -> bytes:
    return json.dumps(item, separators=(",", ":")).encode()


@dataclass
class ReplayStats:
    """What the server saw."""

    ws_connections: int = 0
    requested_streams: list[str] = field(default_factory=list)
    rest_requests: int = 0
    snapshots_served: int = 0
    rate_limited: int = 0


class ReplayServer:
    """Serves one scenario on 127.0.0.1 (an ephemeral port unless given)."""

    def __init__(self, scenario: Scenario, port: int = 0) -> None:
        self.scenario = scenario
        self.stats = ReplayStats()
        self._port = port
        self._runner: web.AppRunner | None = None
        self._served = asyncio.Condition()
        self.port = 0

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/stream", self._stream)
        app.router.add_get("/api/v3/depth", self._depth)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=None, autoping=True)
        await ws.prepare(request)
        index = self.stats.ws_connections
        self.stats.ws_connections += 1
        self.stats.requested_streams = request.query.get("streams", "").split("/")
        script = self.scenario.connections[index] if index < len(self.scenario.connections) else ()
        for item in script:
            directive = item.get("directive")
            if directive == "await_snapshots":
                count = int(item["count"])
                async with self._served:
                    await self._served.wait_for(lambda c=count: self.stats.snapshots_served >= c)  # type: ignore[misc]
            elif directive == "drop":
                if request.transport is not None:
                    request.transport.abort()
                return ws
            else:
                await ws.send_str(encode_frame(item).decode())
        async for msg in ws:  # idle until the client goes away
            if msg.type is WSMsgType.ERROR:
                break
        return ws

    async def _depth(self, request: web.Request) -> web.Response:
        self.stats.rest_requests += 1
        symbol = request.query.get("symbol", "")
        if symbol != self.scenario.symbol:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        limited = self.scenario.rate_limited_first
        if limited is not None and self.stats.rest_requests == 1:
            self.stats.rate_limited += 1
            status, retry_after = limited
            assert parse_retry_after(retry_after) is not None
            return web.json_response(
                {"code": -1003, "msg": "Too many requests."}, status=status, headers={"Retry-After": retry_after}
            )
        snapshots = self.scenario.snapshots
        body = snapshots[min(self.stats.snapshots_served, len(snapshots) - 1)]
        headers = {"X-MBX-USED-WEIGHT-1M": str(50 * self.stats.rest_requests)}
        response = web.Response(body=body, content_type="application/json", headers=headers)
        async with self._served:
            self.stats.snapshots_served += 1
            self._served.notify_all()
        return response


async def serve_forever(directory: Path, port: int) -> None:
    server = ReplayServer(Scenario.load(directory), port=port)
    await server.start()
    print(f"replaying {directory} on ws={server.ws_url} rest={server.rest_url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()


def main() -> None:
    """``python -m services.feeds.binance.replay [fixture_dir] [port]``: serve a scenario for offline runs."""
    import sys

    directory = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("tests/fixtures/binance")
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    asyncio.run(serve_forever(directory, port))


if __name__ == "__main__":
    main()
