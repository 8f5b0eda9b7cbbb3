"""Composition root of questdb-writer: JetStream FILLS/ORDERS/PNL -> WriterService -> QuestDB, plus GetStats."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from trade.questdb_writer.v1 import questdb_writer_pb2, questdb_writer_pb2_grpc

from services.questdb_writer.adapters.questdb_writer import QuestDbIlpWriter
from services.questdb_writer.adapters.schema import QuestDbSql, TableNames
from services.questdb_writer.adapters.source import Feed, JetStreamSource
from services.questdb_writer.domain.model import Kind
from services.questdb_writer.domain.ports import RowWriter
from services.questdb_writer.domain.service import WriterService
from services.questdb_writer.servicer import QuestdbWriterServicer
from services.questdb_writer.settings import QuestdbWriterSettings
from services.runtime.batches import BatchConsumerSpec
from services.runtime.bus import Bus
from services.runtime.server import Registration
from services.runtime.streams import FILLS, ORDERS, PNL

SERVICE_NAME = questdb_writer_pb2.DESCRIPTOR.services_by_name["QuestdbWriterService"].full_name


class SystemClock:
    def now_ns(self) -> int:
        return time.time_ns()


def feeds(settings: QuestdbWriterSettings) -> list[Feed]:
    sources = (
        (Kind.FILLS, settings.fills_stream, settings.fills_subject),
        (Kind.ORDER_EVENTS, settings.orders_stream, settings.orders_subject),
        (Kind.PNL_SNAPSHOTS, settings.pnl_stream, settings.pnl_subject),
    )
    return [
        Feed(
            kind,
            BatchConsumerSpec(
                stream=stream,
                durable=f"{settings.durable_prefix}-{kind.value.replace('_', '-')}",
                filter_subject=subject,
                batch=settings.batch_size,
                ack_wait_s=settings.ack_wait_s,
                linger_s=settings.linger_s,
            ),
        )
        for kind, stream, subject in sources
    ]


def tables(settings: QuestdbWriterSettings) -> dict[Kind, tuple[str, str]]:
    return {
        Kind.FILLS: (settings.fills_table, settings.fills_stream),
        Kind.ORDER_EVENTS: (settings.order_events_table, settings.orders_stream),
        Kind.PNL_SNAPSHOTS: (settings.pnl_snapshots_table, settings.pnl_stream),
    }


@dataclass
class QuestdbWriter:
    settings: QuestdbWriterSettings
    bus: Bus
    service: WriterService
    source: JetStreamSource
    ilp: QuestDbIlpWriter

    async def start(self, *, connect: bool = True) -> None:
        s = self.settings
        await QuestDbSql(s.questdb_http_url).ensure_schema(
            TableNames(s.fills_table, s.order_events_table, s.pnl_snapshots_table)
        )
        if connect:
            await self.bus.connect()
        await self.bus.ensure_streams([FILLS, ORDERS, PNL])
        self.source.start()

    async def stop(self) -> None:
        await self.source.stop()
        await self.ilp.close()
        await self.bus.close()

    def servicer(self) -> QuestdbWriterServicer:
        return QuestdbWriterServicer(self.service, self.source)


def compose(settings: QuestdbWriterSettings, writer: RowWriter | None = None, bus: Bus | None = None) -> QuestdbWriter:
    names = tables(settings)
    ilp = QuestDbIlpWriter(settings.ilp_conf(), {kind: table for kind, (table, _) in names.items()})
    bus = bus or Bus(settings.nats_url, settings.service_name)
    service = WriterService(writer or ilp, SystemClock(), asyncio.sleep, names, settings.remember_keys)
    return QuestdbWriter(settings, bus, service, JetStreamSource(bus, feeds(settings), service), ilp)


async def build(settings: QuestdbWriterSettings) -> Registration:
    writer = compose(settings)
    return Registration(
        add_to_server=lambda server: questdb_writer_pb2_grpc.add_QuestdbWriterServiceServicer_to_server(
            writer.servicer(), server
        ),
        service_names=[SERVICE_NAME],
        on_start=[writer.start],
        on_stop=[writer.stop],
    )
