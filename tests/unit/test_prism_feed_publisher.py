"""The feed publisher pipelines JetStream publishes: sends in order, keeps at most max_in_flight acks pending, and
re-sends (same Nats-Msg-Id) a publish whose ack failed."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from services.prism.adapters.feed_publisher import NatsFeedPublisher
from services.prism.domain.feed import FeedMessage, TradePrint
from services.runtime.bus import Bus


class FakeJs:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.acks: list[asyncio.Future[Any]] = []

    async def publish_async(self, subject: str, payload: bytes, headers: dict[str, str]) -> asyncio.Future[Any]:
        self.sent.append((subject, headers["Nats-Msg-Id"]))
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.acks.append(fut)
        return fut


class FakeBus:
    def __init__(self) -> None:
        self.js = FakeJs()
        self.republished: list[str] = []

    async def publish(self, subject: str, payload: bytes, msg_id: str | None = None, timeout_s: float = 5.0) -> None:
        self.republished.append(msg_id or "")


def _msgs(n: int) -> list[FeedMessage]:
    return [FeedMessage("BTCUSDT", i, 1, TradePrint(i, 100, 1, 1)) for i in range(1, n + 1)]


async def test_in_flight_is_bounded_and_order_kept() -> None:
    bus = FakeBus()
    pub = NatsFeedPublisher(cast(Bus, bus), max_in_flight=4, ack_timeout_s=0.2)

    async def ack_all_soon() -> None:
        while True:
            await asyncio.sleep(0.01)
            for fut in bus.js.acks:
                if not fut.done():
                    fut.set_result(None)

    acker = asyncio.create_task(ack_all_soon())
    await pub.publish(_msgs(10))
    assert pub.in_flight <= 4
    await pub.flush()
    acker.cancel()
    assert [mid for _, mid in bus.js.sent] == [f"prism:BTCUSDT:{i}" for i in range(1, 11)]
    assert all(subject == "md.raw.prism.BTCUSDT" for subject, _ in bus.js.sent)
    assert pub.published == 10 and not bus.republished


async def test_failed_ack_is_republished_with_the_same_msg_id() -> None:
    bus = FakeBus()
    pub = NatsFeedPublisher(cast(Bus, bus), max_in_flight=8, ack_timeout_s=0.05)
    await pub.publish(_msgs(3))
    bus.js.acks[0].set_result(None)
    bus.js.acks[1].set_exception(RuntimeError("nats went away"))
    # acks[2] never arrives: times out
    await pub.flush()
    assert bus.republished == ["prism:BTCUSDT:2", "prism:BTCUSDT:3"]
    assert pub.published == 3 and pub.republished == 2
