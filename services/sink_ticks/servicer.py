"""Translates trade.sink_ticks.v1 to the sink's counters and consumer views. No business rules here."""

from __future__ import annotations

from typing import Any, Protocol

import grpc
from trade.sink_ticks.v1 import sink_ticks_pb2, sink_ticks_pb2_grpc

from services.sink_ticks.domain.model import ConsumerView
from services.sink_ticks.domain.service import TickIngest

Context = grpc.aio.ServicerContext[Any, Any]

_STATE = {
    "running": sink_ticks_pb2.CONSUMER_STATE_RUNNING,
    "reconnecting": sink_ticks_pb2.CONSUMER_STATE_RECONNECTING,
    "failed": sink_ticks_pb2.CONSUMER_STATE_FAILED,
}


class ConsumerStatusSource(Protocol):
    async def status(self) -> list[ConsumerView]: ...


class SinkTicksServicer(sink_ticks_pb2_grpc.SinkTicksServiceServicer):
    def __init__(self, ingest: TickIngest, source: ConsumerStatusSource) -> None:
        self._ingest = ingest
        self._source = source

    async def GetStats(
        self, request: sink_ticks_pb2.GetStatsRequest, context: Context
    ) -> sink_ticks_pb2.GetStatsResponse:
        snap = self._ingest.stats(frozenset(request.tables))
        return sink_ticks_pb2.GetStatsResponse(
            tables=[
                sink_ticks_pb2.TableStats(
                    table=t.table,
                    rows_written=t.rows_written,
                    batches_written=t.batches_written,
                    write_errors=t.write_errors,
                    last_flush_time_ns=t.last_flush_time_ns,
                    last_event_time_ns=t.last_event_time_ns,
                    lag_ns=t.lag_ns(snap.now_ns),
                )
                for t in snap.tables
            ],
            rows_written=snap.rows_written,
            batches_written=snap.batches_written,
            max_lag_ns=snap.max_lag_ns,
        )

    async def GetIngestStatus(
        self, request: sink_ticks_pb2.GetIngestStatusRequest, context: Context
    ) -> sink_ticks_pb2.GetIngestStatusResponse:
        views = await self._source.status()
        consumers = [
            sink_ticks_pb2.ConsumerStatus(
                stream=v.stream,
                consumer=v.consumer,
                filter_subject=v.filter_subject,
                state=_STATE.get(v.state, sink_ticks_pb2.CONSUMER_STATE_UNSPECIFIED),
                pending_messages=v.pending_messages,
                ack_pending=v.ack_pending,
                last_acked_stream_sequence=v.last_acked_stream_sequence,
                last_ack_time_ns=v.last_ack_time_ns,
                last_error=v.last_error,
            )
            for v in views
        ]
        healthy = self._ingest.last_write_ok and all(v.state == "running" for v in views)
        return sink_ticks_pb2.GetIngestStatusResponse(consumers=consumers, healthy=healthy)
