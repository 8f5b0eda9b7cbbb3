"""Composition root of sink-ticks: JetStream MD -> TickIngest -> QuestDB (ILP over HTTP), plus the status RPCs."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from trade.sink_ticks.v1 import sink_ticks_pb2, sink_ticks_pb2_grpc

from services.runtime.batches import BatchConsumerSpec
from services.runtime.bus import Bus
from services.runtime.server import Registration
from services.runtime.streams import MARKET_DATA
from services.sink_ticks.adapters.jetstream_source import JetStreamTickSource
from services.sink_ticks.adapters.questdb_writer import QuestDbIlpWriter
from services.sink_ticks.adapters.schema import QuestDbSql, TableNames
from services.sink_ticks.domain.ports import TickWriter
from services.sink_ticks.domain.service import TickIngest
from services.sink_ticks.servicer import SinkTicksServicer
from services.sink_ticks.settings import SinkTicksSettings

SERVICE_NAME = sink_ticks_pb2.DESCRIPTOR.services_by_name["SinkTicksService"].full_name


class SystemClock:
    def now_ns(self) -> int:
        return time.time_ns()


def consumer_specs(settings: SinkTicksSettings) -> list[BatchConsumerSpec]:
    return [
        BatchConsumerSpec(
            stream=settings.stream,
            durable=f"{settings.durable_prefix}-{kind}",
            filter_subject=subject,
            batch=settings.batch_size,
            max_bytes=settings.fetch_max_bytes,
            ack_wait_s=settings.ack_wait_s,
            max_in_flight=settings.max_in_flight,
            linger_s=settings.linger_s,
        )
        for kind, subject in (("trades", settings.trade_subject), ("quotes", settings.quote_subject))
    ]


@dataclass
class SinkTicks:
    """The running pieces of one sink (the service, or an in-process pipeline in tests and benchmarks)."""

    settings: SinkTicksSettings
    bus: Bus
    ingest: TickIngest
    source: JetStreamTickSource
    writers: list[QuestDbIlpWriter]

    async def start(self, *, connect: bool = True, ensure_md_stream: bool = True) -> None:
        names = TableNames(self.settings.trades_table, self.settings.quotes_table, self.settings.bars_view)
        await QuestDbSql(self.settings.questdb_http_url).ensure_schema(names)
        if connect:
            await self.bus.connect()
        if ensure_md_stream:
            await self.bus.ensure_streams([MARKET_DATA])
        self.source.start()

    async def stop(self) -> None:
        await self.source.stop()
        for writer in self.writers:
            await writer.close()
        await self.bus.close()


def compose(settings: SinkTicksSettings, writer: TickWriter | None = None, bus: Bus | None = None) -> SinkTicks:
    pool = 2 * settings.max_in_flight  # trades and quotes consumers
    ilp = QuestDbIlpWriter(settings.ilp_conf(), settings.trades_table, settings.quotes_table, pool)
    bus = bus or Bus(settings.nats_url, settings.service_name)
    ingest = TickIngest(writer or ilp, SystemClock(), asyncio.sleep, settings.trades_table, settings.quotes_table)
    source = JetStreamTickSource(bus, consumer_specs(settings), ingest)
    return SinkTicks(settings, bus, ingest, source, [ilp])


async def build(settings: SinkTicksSettings) -> Registration:
    sink = compose(settings)
    return Registration(
        add_to_server=lambda server: sink_ticks_pb2_grpc.add_SinkTicksServiceServicer_to_server(
            SinkTicksServicer(sink.ingest, sink.source), server
        ),
        service_names=[SERVICE_NAME],
        on_start=[sink.start],
        on_stop=[sink.stop],
    )
