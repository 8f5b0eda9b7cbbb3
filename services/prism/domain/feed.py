"""PRISM's venue-native feed as plain Python: engine events -> per-symbol sequenced feed messages (no protobuf).

The feed speaks ticks and lots (``price_ticks = price // tick``, ``qty_lots = qty // lot``): a BOOK event becomes a
``LevelUpdate``, a TRADE event a ``TradePrint``; ``image()`` gives the full book as a ``BookImage``. Every message
of a symbol takes the symbol's next feed sequence (+1 per message, no holes), so a consumer that sees a hole knows
it missed something and waits for the next image. Order events (accepted, canceled, ...) are not market data and
produce nothing here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from services.prism.domain.engine import MatchingEngine
from services.prism.domain.events import BOOK, TRADE, Event


@dataclass(frozen=True, slots=True)
class LevelUpdate:
    """One price level's new total (lots) and order count; ``qty_lots == 0`` removes it. side: 1 bid, 2 ask."""

    side: int
    price_ticks: int
    qty_lots: int
    order_count: int


@dataclass(frozen=True, slots=True)
class TradePrint:
    """One trade in ticks and lots; aggressor_side 1 BUY, 2 SELL."""

    trade_id: int
    price_ticks: int
    qty_lots: int
    aggressor_side: int


@dataclass(frozen=True, slots=True)
class BookImage:
    """The full book: ``(price_ticks, qty_lots, order_count)`` per level, best first."""

    bids: tuple[tuple[int, int, int], ...]
    asks: tuple[tuple[int, int, int], ...]


FeedBody = LevelUpdate | TradePrint | BookImage


@dataclass(frozen=True, slots=True)
class FeedMessage:
    """One feed message of one symbol."""

    symbol: str
    sequence: int
    exchange_time_ns: int
    body: FeedBody


class FeedBuilder:
    """Turns drained engine events into feed messages and numbers them per symbol.

    ``start`` holds the last sequence already published per symbol (a restarted prism continues the numbering, so
    consumers and the stream's Nats-Msg-Id deduplication never mistake new messages for old ones).
    """

    def __init__(self, engine: MatchingEngine, start: Mapping[str, int] | None = None) -> None:
        self.engine = engine
        self.sequences: dict[str, int] = {s: 0 for s in engine.symbols}
        if start:
            self.sequences.update({s: n for s, n in start.items() if s in self.sequences})

    def _next(self, symbol: str) -> int:
        seq = self.sequences.get(symbol, 0) + 1
        self.sequences[symbol] = seq
        return seq

    def from_events(self, events: Iterable[Event], now_ns: int) -> list[FeedMessage]:
        """Feed messages for the market-data events among ``events`` (in order)."""
        out: list[FeedMessage] = []
        engine = self.engine
        for ev in events:
            kind = ev[0]
            if kind == BOOK:
                # (BOOK, symbol, update_id, side, price, qty, order_count)
                book = engine.book(ev[1])
                body: FeedBody = LevelUpdate(ev[3], ev[4] // book.tick, ev[5] // book.lot, ev[6])
            elif kind == TRADE:
                # (TRADE, symbol, trade_id, price, qty, aggressor_side, ...)
                book = engine.book(ev[1])
                body = TradePrint(ev[2], ev[3] // book.tick, ev[4] // book.lot, ev[5])
            else:
                continue
            out.append(FeedMessage(ev[1], self._next(ev[1]), now_ns, body))
        return out

    def image(self, symbol: str, now_ns: int) -> FeedMessage:
        """The full book of ``symbol`` as the symbol's next message."""
        book = self.engine.book(symbol)
        snap = book.snapshot()
        tick, lot = book.tick, book.lot
        bids = tuple((p // tick, q // lot, n) for p, q, n in snap.bids)
        asks = tuple((p // tick, q // lot, n) for p, q, n in snap.asks)
        return FeedMessage(symbol, self._next(symbol), now_ns, BookImage(bids, asks))
