"""Marks from market data: a core NATS subscription to md.quote.<symbol> (MarketDataBatch of quotes, mark = mid
of the batch's last two-sided quote per symbol), and priming a symbol with the last message stored in JetStream MD."""

from __future__ import annotations

import contextlib

import structlog
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from services.pnl.adapters.codec import QuoteTick, decode_quotes
from services.pnl.domain.model import mid
from services.pnl.domain.service import PnlService
from services.runtime.bus import Bus

log = structlog.get_logger("pnl.marks")


class QuoteMarks:
    def __init__(self, bus: Bus, service: PnlService, subject: str, md_stream: str, quote_prefix: str) -> None:
        self._bus = bus
        self._service = service
        self._subject = subject
        self._stream = md_stream
        self._prefix = quote_prefix
        self._sub: Subscription | None = None
        self._primed: set[str] = set()
        self.quotes = 0
        self.malformed = 0

    def _apply(self, payload: bytes) -> None:
        quotes = decode_quotes(payload)
        if quotes is None:
            self.malformed += 1
            log.warning("pnl.malformed_quotes", size=len(payload))
            return
        latest: dict[str, QuoteTick] = {}
        for quote in quotes:  # only the mark matters: the last quote with a mid wins
            if mid(quote[1], quote[2]) is not None:
                latest[quote[0]] = quote
        self.quotes += len(quotes)
        for quote in latest.values():
            self._service.on_quote(*quote)

    async def _on_msg(self, msg: Msg) -> None:
        self._apply(msg.data)

    async def start(self) -> None:
        self._sub = await self._bus.nc.subscribe(self._subject, cb=self._on_msg)

    async def prime(self, symbols: set[str]) -> None:
        """Mark each symbol from its last stored quote (nothing if MD holds none); each symbol is tried once."""
        for symbol in sorted(symbols - self._primed):
            self._primed.add(symbol)
            with contextlib.suppress(Exception):
                raw = await self._bus.js.get_last_msg(self._stream, f"{self._prefix}.{symbol}")
                if raw.data:
                    self._apply(raw.data)

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
