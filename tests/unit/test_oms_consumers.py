"""The OMS's EXEC consumer: a batch's orders are applied concurrently, each order's reports in order."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from nats.aio.msg import Msg
from trade.live_gateway.v1 import events_pb2 as exec_pb2

from services.oms.adapters.consumers import OmsConsumers
from services.oms.domain.model import VenueReport
from services.oms.domain.service import Oms
from services.runtime.batches import BatchConsumerSpec


class SlowOms:
    """Records the reports it applies; the reports of `held` wait until released."""

    def __init__(self, held: str) -> None:
        self.held = held
        self.release = asyncio.Event()
        self.applied: list[str] = []
        self.fail_on = ""

    async def on_report(self, report: VenueReport) -> None:
        if report.order_id == self.held:
            await self.release.wait()
        if report.report_id == self.fail_on:
            raise RuntimeError("journal unavailable")
        self.applied.append(report.report_id)


def msg(order_id: str, report_id: str) -> Msg:
    pb = exec_pb2.ExecutionReport(report_id=report_id, order_id=order_id, exec_type=exec_pb2.EXEC_TYPE_NEW)
    return Msg(cast(Any, None), subject="exec.prism.acc", data=pb.SerializeToString())


def consumers(oms: SlowOms) -> OmsConsumers:
    spec = BatchConsumerSpec(stream="EXEC", durable="oms-exec", filter_subject="exec.>")
    return OmsConsumers(cast(Any, None), cast(Oms, oms), spec, spec)


async def test_a_slow_order_does_not_hold_up_the_other_orders_of_its_batch() -> None:
    oms = SlowOms(held="A")
    handling = asyncio.create_task(consumers(oms).on_reports([msg("A", "a1"), msg("B", "b1"), msg("B", "b2")]))
    async with asyncio.timeout(2):
        while oms.applied != ["b1", "b2"]:
            await asyncio.sleep(0.01)
    assert not handling.done()  # the batch is acknowledged only once every order is applied
    oms.release.set()
    await asyncio.wait_for(handling, 2)
    assert oms.applied == ["b1", "b2", "a1"]


async def test_a_failed_report_fails_the_batch_after_the_other_orders_finished() -> None:
    oms = SlowOms(held="")
    oms.fail_on = "a1"
    with pytest.raises(RuntimeError):
        await consumers(oms).on_reports([msg("A", "a1"), msg("A", "a2"), msg("B", "b1")])
    assert oms.applied == ["b1"]  # a2 waits for a1: one order's reports stay in order
