"""MD stream messages for tests: what the normalizer publishes on md.<kind>.<symbol>."""

from __future__ import annotations

from trade.normalizer.v1 import events_pb2


def md_message(*events: events_pb2.MarketDataEvent) -> bytes:
    """A MarketDataBatch of the events (one subject's events, in sequence order)."""
    return events_pb2.MarketDataBatch(events=list(events)).SerializeToString()


def md_events(data: bytes) -> list[events_pb2.MarketDataEvent]:
    """The events of an MD message."""
    return list(events_pb2.MarketDataBatch.FromString(data).events)
