"""Bar queries: intervals, validation and page tokens (plain Python; the store is behind BarStore)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Protocol

from services.runtime.errors import FieldViolation, Validator, invalid_argument

SYMBOL_RE = re.compile(r"^[A-Z0-9_-]{1,32}$")
NS_PER_S = 1_000_000_000


class Interval(Enum):
    """Bar length in seconds."""

    ONE_MINUTE = 60
    FIVE_MINUTES = 300
    FIFTEEN_MINUTES = 900
    ONE_HOUR = 3600
    ONE_DAY = 86400

    @property
    def ns(self) -> int:
        return self.value * NS_PER_S

    @property
    def sample_by(self) -> str:
        """QuestDB SAMPLE BY unit."""
        return {60: "1m", 300: "5m", 900: "15m", 3600: "1h", 86400: "1d"}[self.value]


@dataclass(frozen=True, slots=True)
class BarRow:
    start_time_ns: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    notional: Decimal | None
    trade_count: int
    # Venue token ("prism", "binance_spot"), "" when unknown.
    venue: str = ""


class BarStore(Protocol):
    """Reads bars aggregated to `interval` from the stored one-minute bars; [] when there is no bar table."""

    async def bars(self, symbol: str, interval: Interval, start_ns: int, end_ns: int, limit: int) -> list[BarRow]: ...


@dataclass(frozen=True)
class BarQuery:
    symbol: str
    interval: Interval
    start_ns: int
    end_ns: int
    page_size: int
    # end_time_ns as requested (0 = now), which the page token is bound to.
    requested_end_ns: int = 0


def _fingerprint(symbol: str, interval: Interval, end_ns: int) -> str:
    return hashlib.sha256(f"{symbol}|{interval.value}|{end_ns}".encode()).hexdigest()[:16]


def page_token(query: BarQuery, next_start_ns: int) -> str:
    body = {
        "s": next_start_ns,
        "e": query.end_ns,
        "f": _fingerprint(query.symbol, query.interval, query.requested_end_ns),
    }
    return base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")


def bar_query(
    symbol: str, interval: Interval | None, start_ns: int, end_ns: int, page_size: int, token: str, now_ns: int
) -> BarQuery:
    """Validate a GetBars request; a page token moves the start and must match the other fields."""
    v = Validator()
    v.require(bool(SYMBOL_RE.match(symbol)), "symbol", "must be 1-32 characters of [A-Z0-9_-]")
    v.require(interval is not None, "interval", "must be set")
    v.require(start_ns >= 0, "start_time_ns", "must be >= 0")
    v.require(end_ns >= 0, "end_time_ns", "must be >= 0")
    v.require(page_size >= 0, "page_size", "must be >= 0")
    v.raise_if_any()
    assert interval is not None
    end = end_ns or now_ns
    size = min(page_size or 500, 5000)
    start = start_ns
    if token:
        try:
            padded = token + "=" * (-len(token) % 4)
            body = json.loads(base64.urlsafe_b64decode(padded))
            start, end, fingerprint = int(body["s"]), int(body["e"]), str(body["f"])
        except (ValueError, KeyError, TypeError) as exc:
            raise invalid_argument(FieldViolation("page_token", "not a token from GetBars")) from exc
        # end_time_ns 0 means "now": the token pins the first page's "now".
        if fingerprint != _fingerprint(symbol, interval, end_ns):
            raise invalid_argument(FieldViolation("page_token", "the other request fields changed"))
    if start >= end:
        raise invalid_argument(FieldViolation("start_time_ns", "must be before end_time_ns"))
    return BarQuery(symbol, interval, start, end, size, end_ns)
