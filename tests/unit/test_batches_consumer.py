"""consume_batches without a server: a full batch goes at once (linger only waits for a batch that is not full),
every message of a handled batch is acknowledged explicitly and exactly once (in one write), and a batch whose
handler failed is not acknowledged."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from nats.aio.msg import Msg
from nats.js.errors import NotFoundError

from services.runtime.batches import BatchConsumerSpec, ConsumerHealth, _ack_all, _ensure_consumer, consume_batches
from services.runtime.bus import Bus


class FakeClient:
    """Just enough of nats-py's client: a pull consumer's server side delivering queued messages."""

    def __init__(self) -> None:
        self.available: list[bytes] = []
        self.acks: list[str] = []
        self.naks: list[str] = []
        self.writes = 0
        self.is_connected = True
        self.deliver: Callable[[Msg], Awaitable[None]] | None = None
        self.requested = 0
        self.bytes_left = 0  # of the pull request's max_bytes (0: no limit)
        self.pulls = 0
        self.seq = 0

    def new_inbox(self) -> str:
        return "_INBOX.test"

    async def subscribe(self, subject: str, cb: Callable[[Msg], Awaitable[None]], **_: Any) -> Any:
        self.deliver = cb
        return self

    async def unsubscribe(self) -> None:
        self.deliver = None

    async def publish(self, subject: str, payload: bytes = b"", reply: str = "", headers: Any = None) -> None:
        if subject.startswith("$JS.API.CONSUMER.MSG.NEXT."):
            request = json.loads(payload)  # a new pull request replaces an exhausted one here
            self.requested, self.bytes_left = request["batch"], request.get("max_bytes", 0)
            self.pulls += 1
            await self.pump()
        elif payload == b"":  # an ack
            self.acks.append(subject)
            self.writes += 1
        else:
            self.naks.append(subject)

    async def add(self, *payloads: bytes) -> None:
        self.available.extend(payloads)
        await self.pump()

    async def pump(self) -> None:
        while self.available and self.requested and self.deliver is not None:
            if self.bytes_left:
                if len(self.available[0]) > self.bytes_left:  # as the server: a 409 status ends the request
                    self.requested = 0
                    await self.deliver(Msg(cast(Any, self), "_INBOX.test", "", b"", {"Status": "409"}))
                    return
                self.bytes_left -= len(self.available[0])
            self.requested -= 1
            self.seq += 1
            reply = f"$JS.ACK.S.d.1.{self.seq}.{self.seq}.{time.time_ns()}.0"
            await self.deliver(Msg(cast(Any, self), "md.trade.X", reply, self.available.pop(0), None))


class FastClient(FakeClient):
    """With the client internal the batched acks use (an older or newer nats-py may lack it)."""

    async def _send_command(self, cmd: bytes, priority: bool = False) -> None:
        self.writes += 1
        for line in cmd.split(b"\r\n"):
            if line:
                op, subject, size = line.split(b" ")
                assert op == b"PUB" and size == b"0"
                self.acks.append(subject.decode())


class FakeJs:
    async def consumer_info(self, stream: str, durable: str) -> None:
        return None


class FakeBus:
    def __init__(self, client: FakeClient) -> None:
        self.nc = client
        self.js = FakeJs()
        self.generation = 0


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.batches: list[tuple[float, list[bytes]]] = []
        self.fail = fail
        self.called = asyncio.Event()

    async def __call__(self, msgs: Sequence[Msg]) -> None:
        self.batches.append((time.monotonic(), [m.data for m in msgs]))
        self.called.set()
        if self.fail:
            raise ConnectionError("store down")


def spec(batch: int, linger_s: float) -> BatchConsumerSpec:
    return BatchConsumerSpec("S", "d", "md.trade.>", batch=batch, linger_s=linger_s, heartbeat_s=0.05)


async def run_until(client: FakeClient, spec_: BatchConsumerSpec, handler: Recorder, done: Callable[[], bool]) -> None:
    task = asyncio.create_task(consume_batches(cast(Bus, FakeBus(client)), spec_, handler, ConsumerHealth(spec_)))
    try:
        async with asyncio.timeout(5):
            while not done():
                await asyncio.sleep(0.005)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_full_batch_is_handled_at_once_without_waiting_out_the_linger() -> None:
    client, handler = FastClient(), Recorder()

    async def trickle() -> None:
        for i in range(8):
            await asyncio.sleep(0.005)
            await client.add(b"m%d" % i)

    started = time.monotonic()
    feeder = asyncio.create_task(trickle())
    await run_until(client, spec(batch=4, linger_s=10.0), handler, lambda: len(client.acks) == 8)
    await feeder
    assert [data for _, data in handler.batches] == [[b"m0", b"m1", b"m2", b"m3"], [b"m4", b"m5", b"m6", b"m7"]]
    assert handler.batches[-1][0] - started < 2.0


async def test_a_partial_batch_waits_for_the_linger_and_takes_what_arrives_meanwhile() -> None:
    client, handler = FastClient(), Recorder()
    await client.add(b"a")
    started = time.monotonic()
    task = asyncio.create_task(run_until(client, spec(batch=100, linger_s=0.3), handler, lambda: len(client.acks) == 2))
    await asyncio.sleep(0.1)
    await client.add(b"b")
    async with asyncio.timeout(5):
        await task
    assert [data for _, data in handler.batches] == [[b"a", b"b"]]
    assert handler.batches[0][0] - started >= 0.25


async def test_every_message_of_a_handled_batch_is_acked_exactly_once_in_one_write() -> None:
    client = FastClient()
    await client.add(*(b"m%d" % i for i in range(50)))
    await run_until(client, spec(batch=50, linger_s=0.0), Recorder(), lambda: len(client.acks) == 50)
    assert [int(ack.split(".")[5]) for ack in client.acks] == list(range(1, 51))  # stream sequences 1..50
    assert client.writes == 2  # the joined acks, then the last message's own ack (which wakes nats-py's flusher)


async def test_acks_fall_back_to_one_publish_per_message_without_the_client_internals() -> None:
    client = FakeClient()
    msgs = [Msg(cast(Any, client), "s", f"$JS.ACK.S.d.1.{i}.{i}.0.0", b"x", None) for i in range(1, 4)]
    await _ack_all(msgs)
    assert client.acks == [m.reply for m in msgs] and client.writes == 3
    fast = FastClient()  # connected later: its own publish path buffers or refuses, as for any publish
    fast.is_connected = False
    msgs = [Msg(cast(Any, fast), "s", f"$JS.ACK.S.d.1.{i}.{i}.0.0", b"x", None) for i in range(1, 4)]
    await _ack_all(msgs)
    assert fast.acks == [m.reply for m in msgs] and fast.writes == 3


async def test_a_batch_whose_handler_failed_is_never_acknowledged() -> None:
    client, handler = FastClient(), Recorder(fail=True)
    await client.add(b"a", b"b", b"c")
    await run_until(client, spec(batch=3, linger_s=0.0), handler, lambda: handler.called.is_set())
    await asyncio.sleep(0.05)
    assert client.acks == []
    assert len(client.naks) == 3  # redelivered now rather than after ack_wait


async def test_status_messages_are_never_handled_or_acked_and_a_timed_out_pull_is_renewed() -> None:
    client, handler = FastClient(), Recorder()
    task = asyncio.create_task(run_until(client, spec(batch=10, linger_s=0.0), handler, lambda: len(client.acks) == 2))
    await asyncio.sleep(0.02)
    assert client.deliver is not None
    await client.add(b"a")
    await client.deliver(Msg(cast(Any, client), "_INBOX.test", "", b"", {"Status": "100"}))  # idle heartbeat
    await client.deliver(Msg(cast(Any, client), "_INBOX.test", "", b"", {"Status": "408"}))  # request expired
    pulls = client.pulls
    await asyncio.sleep(0.05)
    await client.add(b"b")
    async with asyncio.timeout(5):
        await task
    assert [d for _, batch in handler.batches for d in batch] == [b"a", b"b"]
    assert client.pulls > pulls


async def test_a_pull_request_that_reached_its_max_bytes_is_handled_at_once_and_the_next_one_follows() -> None:
    client, handler = FastClient(), Recorder()
    await client.add(*(b"m%d__" % i for i in range(6)))  # 4 bytes each, 2 fit in max_bytes 10
    started = time.monotonic()
    spec_ = BatchConsumerSpec("S", "d", "md.trade.>", batch=100, max_bytes=10, linger_s=10.0, heartbeat_s=0.05)
    await run_until(client, spec_, handler, lambda: len(client.acks) == 4)
    # the third request got m4 and m5 with room to spare: it lingers for more, like any partial batch
    assert [data for _, data in handler.batches] == [[b"m0__", b"m1__"], [b"m2__", b"m3__"]]
    assert handler.batches[-1][0] - started < 2.0  # neither waited out the linger


async def test_a_consumer_re_created_after_it_vanished_keeps_its_inactive_threshold_and_memory_storage() -> None:
    class MissingJs:
        def __init__(self) -> None:
            self.added: list[Any] = []

        async def consumer_info(self, stream: str, durable: str) -> None:
            raise NotFoundError

        async def add_consumer(self, stream: str, config: Any) -> None:
            self.added.append(config)

    bus = FakeBus(FakeClient())
    js = MissingJs()
    bus.js = js  # type: ignore[assignment]
    spec_ = BatchConsumerSpec("S", "risk-1-orders", "orders.>", inactive_threshold_s=600.0, mem_storage=True)
    await _ensure_consumer(cast(Bus, bus), spec_)
    (config,) = js.added
    assert (config.durable_name, config.inactive_threshold, config.mem_storage) == ("risk-1-orders", 600.0, True)
    plain = BatchConsumerSpec("S", "oms-exec", "exec.>").config()
    assert (plain.inactive_threshold, plain.mem_storage) == (None, None)  # a shared durable stays forever
