"""Deterministic ids and subjects: the same venue event always yields the same report and fill ids."""

from __future__ import annotations

from services.live_gateway.domain.model import Venue, VenueExecution


def report_id(execution: VenueExecution) -> str:
    """``<venue>:<account_id>:<venue exec id>``: Nats-Msg-Id of the report on EXEC."""
    return f"{execution.venue.value}:{execution.account_id}:{execution.exec_id}"


def fill_id(execution: VenueExecution) -> str:
    """``<venue>:<venue_trade_id>:<venue_order_id>`` (trade.type.v1.Fill): Nats-Msg-Id of the fill on FILLS.

    A trade id is shared by both sides of a trade; the venue order id tells them apart. Venues without trade ids
    fall back to the execution id.
    """
    return f"{execution.venue.value}:{execution.trade_id or execution.exec_id}:{execution.venue_order_id}"


def exec_subject(venue: Venue, account_id: str) -> str:
    return f"exec.{venue.value}.{account_id}"


def fill_subject(account_id: str, symbol: str) -> str:
    return f"fills.{account_id}.{symbol}"
