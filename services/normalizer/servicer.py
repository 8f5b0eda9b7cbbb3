"""Translates trade.normalizer.v1 requests to the normalizer's counters and back."""

from __future__ import annotations

import time
from typing import Any

import grpc
from trade.normalizer.v1 import normalizer_pb2, normalizer_pb2_grpc
from trade.type.v1 import venue_pb2

from services.normalizer.adapters.codec import PB_TO_VENUE, VENUE_TO_PB
from services.normalizer.domain.model import Venue
from services.normalizer.domain.normalizer import Normalizer

Context = grpc.aio.ServicerContext[Any, Any]

_STATUS = {
    "active": normalizer_pb2.FEED_STATUS_ACTIVE,
    "stale": normalizer_pb2.FEED_STATUS_STALE,
    "error": normalizer_pb2.FEED_STATUS_ERROR,
}


def _venue_filter(value: venue_pb2.Venue.ValueType) -> Venue | None:
    venue = PB_TO_VENUE.get(value, Venue.UNSPECIFIED)
    return None if venue is Venue.UNSPECIFIED else venue


class NormalizerServicer(normalizer_pb2_grpc.NormalizerServiceServicer):
    def __init__(self, normalizer: Normalizer) -> None:
        self.normalizer = normalizer

    async def GetStats(
        self, request: normalizer_pb2.GetStatsRequest, context: Context
    ) -> normalizer_pb2.GetStatsResponse:
        only = _venue_filter(request.venue)
        venues = [
            normalizer_pb2.VenueStats(
                venue=VENUE_TO_PB[venue],
                messages_in=c.messages_in,
                messages_out=c.messages_out,
                malformed_count=c.malformed,
                gap_count=c.gaps,
                duplicate_count=c.duplicates,
                last_receive_time_ns=c.last_receive_time_ns,
            )
            for venue, c in sorted(self.normalizer.venues.items(), key=lambda kv: kv[0].value)
            if only is None or venue is only
        ]
        return normalizer_pb2.GetStatsResponse(venues=venues, start_time_ns=self.normalizer.start_time_ns)

    async def ListFeeds(
        self, request: normalizer_pb2.ListFeedsRequest, context: Context
    ) -> normalizer_pb2.ListFeedsResponse:
        feeds = [
            normalizer_pb2.Feed(
                venue=VENUE_TO_PB[f.venue],
                symbol=f.symbol,
                raw_subject=f"md.raw.{f.venue.value}.{f.symbol}",
                status=_STATUS[f.status],
                last_venue_sequence=f.counters.last_venue_sequence,
                last_book_sequence=f.last_book_sequence,
                last_event_time_ns=f.counters.last_event_time_ns,
                last_receive_time_ns=f.counters.last_receive_time_ns,
                messages_in=f.counters.messages_in,
                malformed_count=f.counters.malformed,
            )
            for f in self.normalizer.feeds(time.time_ns(), _venue_filter(request.venue))
        ]
        return normalizer_pb2.ListFeedsResponse(feeds=feeds)
