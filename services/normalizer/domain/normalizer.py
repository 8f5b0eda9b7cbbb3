"""The normalizer: raw venue messages in, canonical events out, with per-venue and per-feed counters."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from services.normalizer.domain.convert import Converted, convert_binance, convert_prism
from services.normalizer.domain.model import (
    Event,
    FeedCounters,
    Instrument,
    MalformedMessage,
    RawMessage,
    Sequences,
    Venue,
    VenueCounters,
)
from services.normalizer.domain.ports import PrismDecoder
from services.normalizer.domain.state import SymbolState

STALE_AFTER_NS = 10 * 1_000_000_000
PRISM_PAYLOAD_TYPE = "trade.prism.v1.PrismFeedMessage"


@dataclass
class Outcome:
    """Result of one raw message: events to publish, or the reason it was rejected."""

    events: list[Event] = field(default_factory=list)
    error: str | None = None
    gap: bool = False
    duplicate: bool = False


@dataclass(frozen=True)
class FeedView:
    venue: Venue
    symbol: str
    status: str  # "active" | "stale" | "error"
    counters: FeedCounters
    last_book_sequence: int


class Normalizer:
    def __init__(self, instruments: Iterable[Instrument], decode_prism: PrismDecoder, start_time_ns: int) -> None:
        self.instruments = {i.symbol: i for i in instruments}
        self.decode_prism = decode_prism
        self.start_time_ns = start_time_ns
        self.symbols: dict[str, SymbolState] = {}
        self.venues: dict[Venue, VenueCounters] = {}

    def knows(self, symbol: str) -> bool:
        return symbol in self.symbols

    def resume(self, symbol: str, venue: Venue, sequences: Sequences) -> None:
        """Continue canonical sequences where a previous run stopped (read back from the MD stream)."""
        if symbol not in self.symbols:
            self.symbols[symbol] = SymbolState(symbol, venue, sequences)

    def _counters(self, venue: Venue, symbol: str) -> tuple[VenueCounters, FeedCounters]:
        vc = self.venues.setdefault(venue, VenueCounters())
        return vc, vc.feeds.setdefault(symbol, FeedCounters())

    def malformed(self, venue: Venue, symbol: str, recv_ns: int, error: str) -> Outcome:
        """Count a message that could not be decoded (also used for an undecodable envelope)."""
        vc, fc = self._counters(venue, symbol)
        vc.messages_in += 1
        fc.messages_in += 1
        vc.malformed += 1
        fc.malformed += 1
        fc.last_error = True
        vc.last_receive_time_ns = fc.last_receive_time_ns = recv_ns
        return Outcome(error=error)

    def handle(self, raw: RawMessage) -> Outcome:
        if not raw.symbol:
            return self.malformed(raw.venue, raw.symbol, raw.receive_time_ns, "envelope without a symbol")
        try:
            converted = self._convert(raw)
        except MalformedMessage as exc:
            return self.malformed(raw.venue, raw.symbol, raw.receive_time_ns, str(exc))
        vc, fc = self._counters(raw.venue, raw.symbol)
        vc.messages_in += 1
        fc.messages_in += 1
        vc.messages_out += len(converted.events)
        fc.messages_out += len(converted.events)
        vc.last_receive_time_ns = fc.last_receive_time_ns = raw.receive_time_ns
        fc.last_error = False
        if converted.gap:
            vc.gaps += 1
            fc.gaps += 1
        if converted.duplicate:
            vc.duplicates += 1
            fc.duplicates += 1
        else:
            fc.last_venue_sequence = converted.venue_sequence or raw.venue_sequence
            fc.last_event_time_ns = converted.event_time_ns
        return Outcome(converted.events, gap=converted.gap, duplicate=converted.duplicate)

    def _convert(self, raw: RawMessage) -> Converted:
        state = self.symbols.get(raw.symbol)
        if state is None:
            state = self.symbols[raw.symbol] = SymbolState(raw.symbol, raw.venue)
        elif state.venue is not raw.venue:
            raise MalformedMessage(f"{raw.symbol} is fed by {state.venue.value}, not {raw.venue.value}")
        if raw.venue is Venue.PRISM:
            if raw.payload_type not in ("", PRISM_PAYLOAD_TYPE):
                raise MalformedMessage(f"unexpected payload type {raw.payload_type!r}")
            inst = self.instruments.get(raw.symbol)
            if inst is None:
                raise MalformedMessage(f"no tick/lot size configured for {raw.symbol}")
            return convert_prism(state, inst, self.decode_prism(raw.payload), raw.receive_time_ns)
        if raw.venue is Venue.BINANCE_SPOT:
            return convert_binance(state, raw)
        raise MalformedMessage(f"no converter for venue {raw.venue.value}")

    def feeds(self, now_ns: int, venue: Venue | None = None) -> list[FeedView]:
        views = []
        for v in sorted(self.venues, key=lambda x: x.value):
            if venue is not None and v is not venue:
                continue
            for symbol in sorted(self.venues[v].feeds):
                fc = self.venues[v].feeds[symbol]
                if fc.last_error:
                    status = "error"
                elif now_ns - fc.last_receive_time_ns > STALE_AFTER_NS:
                    status = "stale"
                else:
                    status = "active"
                state = self.symbols.get(symbol)
                views.append(FeedView(v, symbol, status, fc, state.seq.book if state else 0))
        return views
