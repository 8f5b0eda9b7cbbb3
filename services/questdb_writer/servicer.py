"""Translates trade.questdb_writer.v1 to the writer's counters. No business rules here."""

from __future__ import annotations

from typing import Any

import grpc
from trade.questdb_writer.v1 import questdb_writer_pb2, questdb_writer_pb2_grpc

from services.questdb_writer.adapters.source import JetStreamSource
from services.questdb_writer.domain.service import WriterService

Context = grpc.aio.ServicerContext[Any, Any]


class QuestdbWriterServicer(questdb_writer_pb2_grpc.QuestdbWriterServiceServicer):
    def __init__(self, service: WriterService, source: JetStreamSource) -> None:
        self._service = service
        self._source = source

    async def GetStats(
        self, request: questdb_writer_pb2.GetStatsRequest, context: Context
    ) -> questdb_writer_pb2.GetStatsResponse:
        wanted = frozenset(request.tables)
        pending = await self._source.pending()
        by_table = {self._service.table(kind): n for kind, n in pending.items()}
        return questdb_writer_pb2.GetStatsResponse(
            tables=[
                questdb_writer_pb2.TableStats(
                    table=c.table,
                    source_stream=c.source_stream,
                    rows_written=c.rows_written,
                    duplicates_skipped=c.duplicates_skipped,
                    malformed_count=c.malformed_count,
                    write_errors=c.write_errors,
                    last_stream_sequence=c.last_stream_sequence,
                    pending_messages=by_table.get(c.table, 0),
                    last_write_time_ns=c.last_write_time_ns,
                )
                for c in self._service.stats(wanted)
            ],
            start_time_ns=self._service.start_time_ns,
        )
