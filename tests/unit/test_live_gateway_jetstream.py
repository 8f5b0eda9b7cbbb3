"""The gateway's JetStream side: a report or fill JetStream does not take is a retryable UNAVAILABLE, not an
unhandled error."""

from __future__ import annotations

from collections.abc import Awaitable
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from nats.errors import ConnectionClosedError
from nats.js.errors import NoStreamResponseError

from services.live_gateway.adapters.jetstream import JetStreamReports
from services.live_gateway.domain.model import Fill, Liquidity, Side, Venue
from services.runtime.errors import DomainError, ErrorKind

FILL = Fill(
    fill_id="prism:T1:V1",
    order_id="O1",
    client_order_id="c1",
    account_id="ACC-1",
    symbol="BTCUSDT",
    side=Side.BUY,
    price=Decimal("100"),
    quantity=Decimal("1"),
    fee=Decimal("0.1"),
    fee_currency="USDT",
    liquidity=Liquidity.TAKER,
    venue=Venue.PRISM,
    venue_order_id="V1",
    venue_trade_id="T1",
    event_time_ns=1,
    receive_time_ns=2,
)


class Bus:
    def __init__(self, on_send: Exception | None = None, on_ack: Exception | None = None) -> None:
        self.on_send = on_send
        self.on_ack = on_ack

    async def send(self, subject: str, payload: bytes, **_: Any) -> Awaitable[Any]:
        if self.on_send is not None:
            raise self.on_send

        async def ack() -> Any:
            if self.on_ack is not None:
                raise self.on_ack
            return SimpleNamespace(duplicate=False)

        return ack()


@pytest.mark.parametrize(
    "bus",
    [Bus(on_ack=NoStreamResponseError()), Bus(on_ack=TimeoutError()), Bus(on_send=ConnectionClosedError())],
    ids=["no-stream-response", "ack-timeout", "connection-closed"],
)
async def test_a_write_jetstream_does_not_take_is_a_retryable_unavailable(bus: Bus) -> None:
    reports = JetStreamReports(bus)  # type: ignore[arg-type]
    with pytest.raises(DomainError) as err:
        await (await reports.send_fill(FILL))
    assert (err.value.kind, err.value.reason) == (ErrorKind.UNAVAILABLE, "DEPENDENCY_UNAVAILABLE")


async def test_a_stored_write_is_reported_as_new() -> None:
    assert await (await JetStreamReports(Bus()).send_fill(FILL))  # type: ignore[arg-type]
