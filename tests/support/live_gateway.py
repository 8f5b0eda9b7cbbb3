"""Helpers of the live-gateway integration tests: an in-process gateway server and JetStream readers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
from nats.aio.msg import Msg
from trade.live_gateway.v1 import live_gateway_pb2_grpc

from services.live_gateway.bootstrap import SERVICE_NAME, LiveGateway, compose
from services.live_gateway.settings import LiveGatewaySettings
from services.runtime.bus import Bus
from services.runtime.server import Registration, start_server


@asynccontextmanager
async def running_gateway(
    settings: LiveGatewaySettings,
) -> AsyncIterator[tuple[LiveGateway, live_gateway_pb2_grpc.LiveGatewayServiceAsyncStub]]:
    """The gateway's composition root served on an ephemeral port (stopped, with its venue streams, on exit)."""
    app = compose(settings)
    registration = Registration(
        add_to_server=lambda server: live_gateway_pb2_grpc.add_LiveGatewayServiceServicer_to_server(
            app.servicer(), server
        ),
        service_names=[SERVICE_NAME],
        on_start=[app.start],
        on_stop=[app.stop],
    )
    server = await start_server(settings, registration)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield app, live_gateway_pb2_grpc.LiveGatewayServiceStub(channel)
    finally:
        await channel.close()
        await server.stop()


async def count(bus: Bus, stream: str, subject: str) -> int:
    info = await bus.js.stream_info(stream, subjects_filter=subject)
    return sum((info.state.subjects or {}).values())


async def wait_count(bus: Bus, stream: str, subject: str, expected: int, timeout_s: float = 5.0) -> int:
    """Poll until the subject holds at least `expected` messages (or the timeout passes); returns the count."""
    deadline = time.monotonic() + timeout_s
    n = await count(bus, stream, subject)
    while n < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        n = await count(bus, stream, subject)
    return n


async def read_all(bus: Bus, stream: str, subject: str, timeout_s: float = 5.0) -> list[Msg]:
    """Every message stored under the subject, oldest first (an ephemeral pull consumer)."""
    expected = await count(bus, stream, subject)
    sub = await bus.js.pull_subscribe(subject, stream=stream)
    msgs: list[Msg] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(msgs) < expected and time.monotonic() < deadline:
            try:
                msgs += await sub.fetch(expected - len(msgs), timeout=0.5)
            except TimeoutError:
                continue
    finally:
        await sub.unsubscribe()
    return msgs
