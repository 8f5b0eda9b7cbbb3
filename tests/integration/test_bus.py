"""The runtime's NATS bus against the real nats-server of the mesh: dedup, durability, self-healing consumers."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from nats.aio.msg import Msg
from nats.js import api
from opentelemetry import trace

from mesh import control
from services.runtime.bus import Bus, ConsumerSpec, StreamSpec
from services.runtime.settings import ServiceSettings
from services.runtime.streams import FILLS, MARKET_DATA, MARKET_DATA_RAW, ORDERS
from services.runtime.telemetry import configure_tracing
from tests.support.mesh import wait_feed_flowing

pytestmark = pytest.mark.usefixtures("mesh")


@pytest.fixture
async def bus() -> AsyncIterator[Bus]:
    bus = Bus(ServiceSettings().nats_url, "test-bus")
    await bus.connect()
    yield bus
    await bus.close()


@pytest.fixture
async def nats_disruption() -> AsyncIterator[None]:
    """For tests that kill or restart NATS: afterwards, wait until the mesh's feed is stored again."""
    yield
    await asyncio.to_thread(wait_feed_flowing)


def _spec() -> StreamSpec:
    tag = uuid.uuid4().hex[:8].upper()
    return StreamSpec(name=f"TEST_{tag}", subjects=(f"test.{tag}.>",), duplicate_window_s=60)


async def _wait_nats_ready(limit_s: float = 30) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if control.is_running("nats") and control.ready("nats").ok:
            return
        await asyncio.sleep(0.2)
    raise AssertionError("nats did not come back")


async def _publish_retrying(bus: Bus, subject: str, payload: bytes, msg_id: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            await bus.publish(subject, payload, msg_id=msg_id, timeout_s=1.0)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def test_publishing_the_same_message_id_twice_stores_it_once(bus: Bus) -> None:
    spec = _spec()
    await bus.ensure_streams([spec])
    subject = spec.subjects[0].replace(">", "fill")
    first = await bus.publish(subject, b"fill-1", msg_id="fill-1")
    again = await bus.publish(subject, b"fill-1", msg_id="fill-1")
    assert not first.duplicate and again.duplicate
    info = await bus.js.stream_info(spec.name)
    assert info.state.messages == 1
    await bus.js.delete_stream(spec.name)


async def test_sent_messages_are_stored_in_send_order_with_their_acks_awaited_later(bus: Bus) -> None:
    spec = _spec()
    await bus.ensure_streams([spec])
    subject = spec.subjects[0].replace(">", "report")
    acks = [await bus.send(subject, f"r-{i}".encode(), msg_id=f"r-{i}") for i in range(200)]
    acks.append(await bus.send(subject, b"r-7", msg_id="r-7"))  # a retry of one already sent
    stored = await asyncio.gather(*acks)
    assert [a.seq for a in stored[:200]] == list(range(1, 201))
    assert stored[200].duplicate and stored[200].seq == 8
    first = await bus.js.get_msg(spec.name, 1)
    last = await bus.js.get_msg(spec.name, 200)
    assert (first.data, last.data) == (b"r-0", b"r-199")
    await bus.js.delete_stream(spec.name)


async def test_a_sent_message_whose_ack_never_comes_times_out(bus: Bus) -> None:
    subject = f"nostore.{uuid.uuid4().hex}"
    silent = await bus.nc.subscribe(subject)  # receives it and never answers: no stream, no ack
    try:
        ack = await bus.send(subject, b"x", timeout_s=0.3)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await ack
        assert time.monotonic() - started < 2
    finally:
        await silent.unsubscribe()


async def test_declared_streams_are_file_backed_with_the_dedup_window(bus: Bus) -> None:
    spec = _spec()
    await bus.ensure_streams([spec])
    await bus.ensure_streams([spec])  # idempotent
    info = await bus.js.stream_info(spec.name)
    assert info.config.storage == api.StorageType.FILE
    assert info.config.duplicate_window == pytest.approx(60)
    await bus.js.delete_stream(spec.name)


async def test_trace_context_travels_in_nats_headers(bus: Bus) -> None:
    spec = _spec()
    await bus.ensure_streams([spec])
    subject = spec.subjects[0].replace(">", "traced")
    configure_tracing("test-bus")
    received: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def handle(msg: Msg) -> None:
        if not received.done():
            received.set_result(trace.get_current_span().get_span_context().trace_id)

    with trace.get_tracer("test").start_as_current_span("publish") as span:
        sent_trace_id = span.get_span_context().trace_id
        await bus.publish(subject, b"x", msg_id="traced-1")
    bus.consume(ConsumerSpec(stream=spec.name, durable=f"t{spec.name}", filter_subject=spec.subjects[0]), handle)
    assert await asyncio.wait_for(received, timeout=10) == sent_trace_id
    await bus.js.delete_stream(spec.name)


async def test_acknowledged_message_survives_kill_9_of_the_server(bus: Bus, nats_disruption: None) -> None:
    spec = _spec()
    await bus.ensure_streams([spec])
    subject = spec.subjects[0].replace(">", "durable")
    for i in range(20):
        await bus.publish(subject, f"m{i}".encode(), msg_id=f"m{i}")
    os.kill(control.pid("nats"), signal.SIGKILL)
    await asyncio.sleep(0.5)
    await _wait_nats_ready()
    deadline = time.monotonic() + 15
    while True:
        try:
            info = await bus.js.stream_info(spec.name)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)
    assert info.state.messages == 20
    await bus.js.delete_stream(spec.name)


async def test_consumer_resumes_by_itself_after_a_server_restart(bus: Bus, nats_disruption: None) -> None:
    spec = _spec()
    await bus.ensure_streams([spec])
    subject = spec.subjects[0].replace(">", "evt")
    seen: set[str] = set()
    deliveries = 0

    async def handle(msg: Msg) -> None:
        nonlocal deliveries
        deliveries += 1
        seen.add(msg.data.decode())

    bus.consume(
        ConsumerSpec(
            stream=spec.name,
            durable=f"d{spec.name}",
            filter_subject=spec.subjects[0],
            fetch_timeout_s=1.0,
            heartbeat_s=0.3,
        ),
        handle,
    )
    for i in range(50):
        await bus.publish(subject, f"e{i}".encode(), msg_id=f"e{i}")
    control.restart("nats")
    for i in range(50, 100):
        await _publish_retrying(bus, subject, f"e{i}".encode(), f"e{i}")
    deadline = time.monotonic() + 30
    while len(seen) < 100 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert seen == {f"e{i}" for i in range(100)}
    assert deliveries >= 100
    await bus.js.delete_stream(spec.name)


async def test_market_data_is_acked_before_its_fsync_while_orders_and_fills_keep_it(bus: Bus) -> None:
    await bus.ensure_streams([MARKET_DATA, MARKET_DATA_RAW, ORDERS, FILLS])
    for fast in (MARKET_DATA, MARKET_DATA_RAW):
        assert (await bus.js.stream_info(fast.name)).config.persist_mode == api.PersistMode.ASYNC
    for durable in (ORDERS, FILLS):
        assert (await bus.js.stream_info(durable.name)).config.persist_mode in (None, api.PersistMode.DEFAULT)
