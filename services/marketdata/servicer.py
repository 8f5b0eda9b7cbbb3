"""Translates trade.marketdata.v1 to the in-process market-data hub, the bar store and the instrument list."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import grpc
import structlog
from trade.marketdata.v1 import marketdata_pb2, marketdata_pb2_grpc
from trade.type.v1 import decimal_pb2, instrument_pb2, market_data_pb2, stream_pb2, venue_pb2

from services.marketdata.adapters.codec import decimal_text, delta_pb, snapshot_pb
from services.marketdata.domain.bars import SYMBOL_RE, BarStore, Interval, bar_query, page_token
from services.marketdata.domain.batching import MAX_BATCH, BatchMember, BatchOptions, FrameQueue, coalesce
from services.marketdata.domain.hub import MarketData
from services.marketdata.domain.queues import BookQueue, ConflatingQueue, DropOldestQueue
from services.marketdata.settings import InstrumentConfig, MarketDataSettings
from services.runtime.errors import DomainError, ErrorKind, FieldViolation, Validator, invalid_argument

Context = grpc.aio.ServicerContext[Any, Any]
log = structlog.get_logger("marketdata")

_INTERVALS = {
    market_data_pb2.BAR_INTERVAL_ONE_MINUTE: Interval.ONE_MINUTE,
    market_data_pb2.BAR_INTERVAL_FIVE_MINUTES: Interval.FIVE_MINUTES,
    market_data_pb2.BAR_INTERVAL_FIFTEEN_MINUTES: Interval.FIFTEEN_MINUTES,
    market_data_pb2.BAR_INTERVAL_ONE_HOUR: Interval.ONE_HOUR,
    market_data_pb2.BAR_INTERVAL_ONE_DAY: Interval.ONE_DAY,
}
_VENUES = {"prism": venue_pb2.VENUE_PRISM, "paper": venue_pb2.VENUE_PAPER, "binance_spot": venue_pb2.VENUE_BINANCE_SPOT}
MAX_DEPTH = 1000
MAX_SYMBOLS = 1000

AnyQueue = ConflatingQueue[str, Any] | DropOldestQueue[Any] | BookQueue[Any] | FrameQueue
SERVICE = marketdata_pb2.DESCRIPTOR.services_by_name["MarketDataService"].full_name
STREAMS = ("StreamQuotes", "StreamTrades", "StreamBook")


def _serialize(message: Any) -> bytes:
    """Response serializer of the streams: batched streams write pre-encoded wire bytes as they are."""
    return message if isinstance(message, bytes) else bytes(message.SerializeToString())


class _Capture:
    """Collects what the generated `add_...Servicer_to_server` registers, so it can be adjusted."""

    def __init__(self) -> None:
        self.handlers: dict[str, Any] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        pass

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        self.handlers = handlers


def add_to_server(servicer: MarketDataServicer, server: Any) -> None:
    """The generated registration with the streams' response serializer passing pre-encoded bytes through."""
    capture = _Capture()
    marketdata_pb2_grpc.add_MarketDataServiceServicer_to_server(servicer, capture)  # type: ignore[arg-type]
    handlers = {
        name: handler._replace(response_serializer=_serialize) if name in STREAMS else handler
        for name, handler in capture.handlers.items()
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_registered_method_handlers(SERVICE, handlers)
    servicer.writes_bytes = True


def _symbols(values: Sequence[str]) -> list[str]:
    v = Validator()
    v.require(len(values) <= MAX_SYMBOLS, "symbols", f"at most {MAX_SYMBOLS} symbols")
    for i, s in enumerate(values):
        v.require(bool(SYMBOL_RE.match(s)), f"symbols[{i}]", "must be 1-32 characters of [A-Z0-9_-]")
    v.raise_if_any()
    return list(values)


def _batching(max_batch: int, window_ms: int) -> BatchOptions | None:
    v = Validator()
    v.require(window_ms <= 1000, "batch_window_ms", "must be 0-1000")
    v.raise_if_any()
    return BatchOptions.of(min(max_batch, MAX_BATCH), window_ms)


def _symbol(value: str) -> str:
    if not SYMBOL_RE.match(value):
        raise invalid_argument(FieldViolation("symbol", "must be 1-32 characters of [A-Z0-9_-]"))
    return value


def _depth(value: int, default: int) -> int:
    if value > MAX_DEPTH:
        raise invalid_argument(FieldViolation("depth", f"must be 0-{MAX_DEPTH}"))
    return value or default


def _dec(text: str) -> decimal_pb2.Decimal:
    return decimal_pb2.Decimal(value=decimal_text(Decimal(text)))


def instrument_pb(cfg: InstrumentConfig) -> instrument_pb2.Instrument:
    return instrument_pb2.Instrument(
        symbol=cfg.symbol,
        base=cfg.base,
        quote=cfg.quote,
        tick_size=_dec(cfg.tick_size),
        lot_size=_dec(cfg.lot_size),
        min_notional=_dec(cfg.min_notional),
        status=instrument_pb2.INSTRUMENT_STATUS_TRADING,
        venue=_VENUES.get(cfg.venue, venue_pb2.VENUE_UNSPECIFIED),
    )


class MarketDataServicer(marketdata_pb2_grpc.MarketDataServiceServicer):
    """Streams are coroutines that `await context.write(...)` rather than async generators: a client that goes
    away cancels the coroutine at its current await, so the `finally` releases the subscription and its queue at
    once (an abandoned generator would wait for garbage collection)."""

    def __init__(self, md: MarketData[Any], bars: BarStore, settings: MarketDataSettings) -> None:
        self.md = md
        self.bars = bars
        self.settings = settings
        self.instruments = sorted(settings.instruments, key=lambda i: i.symbol)
        # Set by `add_to_server`: the streams may write pre-encoded bytes (else they are parsed back first).
        self.writes_bytes = False

    # ---------------------------------------------------------------- streams

    def _heartbeat(self, queue: AnyQueue) -> stream_pb2.StreamHeartbeat:
        return stream_pb2.StreamHeartbeat(
            server_time_ns=time.time_ns(), conflated_count=queue.conflated, dropped_count=queue.dropped
        )

    def _opened(self, kind: str, sub_id: int, **fields: Any) -> None:
        log.info("marketdata.stream_opened", kind=kind, stream_id=sub_id, active=self.md.subscriber_counts(), **fields)

    def _closed(self, kind: str, sub_id: int, queue: AnyQueue) -> None:
        log.info(
            "marketdata.stream_released",
            kind=kind,
            stream_id=sub_id,
            conflated=queue.conflated,
            dropped=queue.dropped,
            active=self.md.subscriber_counts(),
        )

    async def _write_frames(
        self,
        member: BatchMember,
        context: Context,
        response: Any,
        catch_up: Callable[[BatchMember], list[bytes]] | None = None,
        first: list[bytes] | None = None,
    ) -> None:
        """A batched stream: the shared frames of its group, heartbeats, and catch-up batches for quotes."""
        queue = member.queue
        raw = self.writes_bytes
        parse = response.FromString
        interval = self.settings.heartbeat_interval_s
        next_hb = time.monotonic() + interval
        for data in first or ():
            await context.write(data if raw else parse(data))
        while True:
            await queue.signal.wait(max(0.0, next_hb - time.monotonic()))
            if queue.catch_up and catch_up is not None:
                queue.caught_up()
                for data in catch_up(member):
                    await context.write(data if raw else parse(data))
            # The wire bytes of batch messages concatenate into one message: a parser merges repeated occurrences
            # of the same oneof message field, appending their repeated updates in order.
            for run in coalesce(queue.drain(), member.group.options.max_batch):
                data = run[0].data if len(run) == 1 else b"".join(f.data for f in run)
                await context.write(data if raw else parse(data))
            if time.monotonic() >= next_hb:
                await context.write(response(heartbeat=self._heartbeat(queue)))
                next_hb = time.monotonic() + interval

    async def StreamQuotes(  # type: ignore[override]  # writes with context.write (see class docstring)
        self, request: marketdata_pb2.StreamQuotesRequest, context: Context
    ) -> None:
        symbols = _symbols(request.symbols)
        options = _batching(request.max_batch, request.batch_window_ms)
        if options is not None:
            member = self.md.subscribe_quotes_batched(symbols, options)
            self._opened("quotes", member.id, symbols=symbols, max_batch=options.max_batch)
            try:
                first = self.md.latest_quotes_frames(member)
                await self._write_frames(
                    member, context, marketdata_pb2.StreamQuotesResponse, self.md.latest_quotes_frames, first
                )
                return
            finally:
                self.md.quotes.unsubscribe_batched(member)
                self._closed("quotes", member.id, member.queue)
        sub = self.md.subscribe_quotes(symbols)
        self._opened("quotes", sub.id, symbols=symbols)
        queue = sub.queue
        try:
            interval = self.settings.heartbeat_interval_s
            next_hb = time.monotonic() + interval
            while True:
                await queue.signal.wait(max(0.0, next_hb - time.monotonic()))
                for quote in queue.drain():
                    await context.write(marketdata_pb2.StreamQuotesResponse(quote=quote))
                if time.monotonic() >= next_hb:
                    await context.write(marketdata_pb2.StreamQuotesResponse(heartbeat=self._heartbeat(queue)))
                    next_hb = time.monotonic() + interval
        finally:
            self.md.quotes.unsubscribe(sub)
            self._closed("quotes", sub.id, queue)

    async def StreamTrades(  # type: ignore[override]  # writes with context.write (see class docstring)
        self, request: marketdata_pb2.StreamTradesRequest, context: Context
    ) -> None:
        symbols = _symbols(request.symbols)
        options = _batching(request.max_batch, request.batch_window_ms)
        if options is not None:
            member = self.md.trades.subscribe_batched(symbols, options)
            self._opened("trades", member.id, symbols=symbols, max_batch=options.max_batch)
            try:
                await self._write_frames(member, context, marketdata_pb2.StreamTradesResponse)
                return
            finally:
                self.md.trades.unsubscribe_batched(member)
                self._closed("trades", member.id, member.queue)
        sub = self.md.trades.subscribe(symbols)
        self._opened("trades", sub.id, symbols=symbols)
        queue = sub.queue
        try:
            interval = self.settings.heartbeat_interval_s
            next_hb = time.monotonic() + interval
            while True:
                await queue.signal.wait(max(0.0, next_hb - time.monotonic()))
                for trade in queue.drain():
                    await context.write(marketdata_pb2.StreamTradesResponse(trade=trade))
                if time.monotonic() >= next_hb:
                    await context.write(marketdata_pb2.StreamTradesResponse(heartbeat=self._heartbeat(queue)))
                    next_hb = time.monotonic() + interval
        finally:
            self.md.trades.unsubscribe(sub)
            self._closed("trades", sub.id, queue)

    async def StreamBook(  # type: ignore[override]  # writes with context.write (see class docstring)
        self, request: marketdata_pb2.StreamBookRequest, context: Context
    ) -> None:
        symbol = _symbol(request.symbol)
        depth = _depth(request.depth, self.settings.default_depth)
        max_batch = min(request.max_batch, MAX_BATCH)
        books = self.md.books
        sub = books.subscribe(symbol, depth)
        self._opened("books", sub.id, symbols=[symbol], depth=depth)
        queue = sub.queue
        try:
            interval = self.settings.heartbeat_interval_s
            next_hb = time.monotonic() + interval
            while True:
                if queue.needs_snapshot:
                    snap = books.take_snapshot(sub)
                    if snap is not None:
                        await context.write(marketdata_pb2.StreamBookResponse(snapshot=snapshot_pb(symbol, snap)))
                venue = books.book(symbol).venue
                deltas = queue.drain()
                if max_batch > 1:
                    for i in range(0, len(deltas), max_batch):
                        batch = [delta_pb(symbol, venue, sub.stamp(d)) for d in deltas[i : i + max_batch]]
                        await context.write(
                            marketdata_pb2.StreamBookResponse(deltas=marketdata_pb2.BookDeltaBatch(deltas=batch))
                        )
                    deltas = []
                for delta in deltas:
                    stamped = sub.stamp(delta)
                    await context.write(marketdata_pb2.StreamBookResponse(delta=delta_pb(symbol, venue, stamped)))
                if time.monotonic() >= next_hb:
                    await context.write(marketdata_pb2.StreamBookResponse(heartbeat=self._heartbeat(queue)))
                    next_hb = time.monotonic() + interval
                if not queue.needs_snapshot or not books.book(symbol).synced:
                    await queue.signal.wait(max(0.0, next_hb - time.monotonic()))
        finally:
            books.unsubscribe(sub)
            self._closed("books", sub.id, queue)

    # ---------------------------------------------------------------- unary

    async def GetSnapshot(
        self, request: marketdata_pb2.GetSnapshotRequest, context: Context
    ) -> marketdata_pb2.GetSnapshotResponse:
        symbol = _symbol(request.symbol)
        depth = _depth(request.depth, self.settings.default_depth)
        quote = self.md.latest_quote.get(symbol)
        trade = self.md.last_trade.get(symbol)
        book = self.md.books.books.get(symbol)
        known = any(i.symbol == symbol for i in self.instruments)
        if not known and quote is None and trade is None and book is None:
            raise DomainError("INSTRUMENT_NOT_FOUND", f"no instrument {symbol}", ErrorKind.NOT_FOUND)
        out = marketdata_pb2.GetSnapshotResponse()
        if quote is not None:
            out.quote.CopyFrom(quote)
        if trade is not None:
            out.last_trade.CopyFrom(trade)
        if book is not None and book.synced:
            out.book.CopyFrom(snapshot_pb(symbol, book.snapshot(depth)))
        return out

    async def GetBars(self, request: marketdata_pb2.GetBarsRequest, context: Context) -> marketdata_pb2.GetBarsResponse:
        interval = _INTERVALS.get(request.interval)
        query = bar_query(
            request.symbol,
            interval,
            request.start_time_ns,
            request.end_time_ns,
            request.page_size,
            request.page_token,
            time.time_ns(),
        )
        try:
            rows = await self.bars.bars(query.symbol, query.interval, query.start_ns, query.end_ns, query.page_size + 1)
        except (TimeoutError, OSError) as exc:
            raise DomainError(
                "BAR_STORE_UNAVAILABLE", f"bar store unavailable: {exc!r}", ErrorKind.UNAVAILABLE
            ) from exc
        more = len(rows) > query.page_size
        rows = rows[: query.page_size]
        step = query.interval.ns
        out = marketdata_pb2.GetBarsResponse(
            bars=[
                market_data_pb2.Bar(
                    symbol=query.symbol,
                    venue=_VENUES.get(r.venue, venue_pb2.VENUE_UNSPECIFIED),
                    interval=request.interval,
                    start_time_ns=r.start_time_ns,
                    end_time_ns=r.start_time_ns + step,
                    open=decimal_pb2.Decimal(value=decimal_text(r.open)),
                    high=decimal_pb2.Decimal(value=decimal_text(r.high)),
                    low=decimal_pb2.Decimal(value=decimal_text(r.low)),
                    close=decimal_pb2.Decimal(value=decimal_text(r.close)),
                    volume=decimal_pb2.Decimal(value=decimal_text(r.volume)),
                    notional=None if r.notional is None else decimal_pb2.Decimal(value=decimal_text(r.notional)),
                    trade_count=r.trade_count,
                )
                for r in rows
            ]
        )
        if more and rows:
            out.next_page_token = page_token(query, rows[-1].start_time_ns + step)
        return out

    async def ListInstruments(
        self, request: marketdata_pb2.ListInstrumentsRequest, context: Context
    ) -> marketdata_pb2.ListInstrumentsResponse:
        if request.page_size < 0:
            raise invalid_argument(FieldViolation("page_size", "must be >= 0"))
        size = min(request.page_size or 100, 1000)
        after = ""
        if request.page_token:
            try:
                after = base64.urlsafe_b64decode(request.page_token.encode() + b"==").decode()
            except ValueError as exc:
                raise invalid_argument(FieldViolation("page_token", "not a token from ListInstruments")) from exc
        items = [
            instrument_pb(i)
            for i in self.instruments
            if i.symbol > after
            and request.status
            in (instrument_pb2.INSTRUMENT_STATUS_UNSPECIFIED, instrument_pb2.INSTRUMENT_STATUS_TRADING)
        ]
        page = items[:size]
        out = marketdata_pb2.ListInstrumentsResponse(instruments=page)
        if len(items) > size:
            out.next_page_token = base64.urlsafe_b64encode(page[-1].symbol.encode()).decode().rstrip("=")
        return out
