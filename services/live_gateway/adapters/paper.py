"""The paper venue: the PaperEngine fed with live quotes (md.quote.<symbol>, NATS core, MarketDataBatch).

Every quote of a message is applied in order (a resting limit fills if any of them crosses it). A symbol's quotes
are subscribed on its first order; the last quote of the last message kept in JetStream MD seeds the mid so a
market order does not wait for the next tick. Every paper execution is handed to the gateway under one lock, so reports
of an order come out in the engine's order (a quote-triggered fill never overtakes the order's NEW).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.errors import NotFoundError
from trade.normalizer.v1 import events_pb2
from trade.type.v1 import market_data_pb2

from services.live_gateway.adapters.codec import dec_or_none
from services.live_gateway.domain.model import (
    AmendOrder,
    AmendResult,
    CancelOrder,
    CancelResult,
    ConnectionState,
    ConnectionStatus,
    OrderType,
    PlaceOrder,
    PlaceResult,
    TimeInForce,
    Venue,
    VenueCapabilities,
    VenueExecution,
)
from services.live_gateway.domain.paper import PaperEngine, paper_order_id
from services.live_gateway.domain.ports import Checkpoints, Clock, ExecutionSink
from services.runtime.bus import Bus

log = structlog.get_logger("live_gateway.paper")

CAPABILITIES = VenueCapabilities(
    display_name="Paper trading (fills at the live mid)",
    simulated=True,
    order_types=(OrderType.MARKET, OrderType.LIMIT),
    time_in_force=(TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.GTD),
    native_amend=True,
)


def quotes_of(data: bytes) -> list[market_data_pb2.Quote]:
    """The quotes of an MD message (a MarketDataBatch), in order; raises DecodeError for anything else."""
    batch = events_pb2.MarketDataBatch.FromString(data)
    return [event.quote for event in batch.events if event.HasField("quote")]


class PaperAdapter:
    def __init__(
        self, engine: PaperEngine, bus: Bus, clock: Clock, md_stream: str = "MD", quote_prefix: str = "md.quote"
    ) -> None:
        self.engine = engine
        self._bus = bus
        self._clock = clock
        self._md_stream = md_stream
        self._quote_prefix = quote_prefix
        self._subs: dict[str, Subscription] = {}
        self._lock = asyncio.Lock()
        self._sink: ExecutionSink | None = None
        self._last_quote_ns = 0

    @property
    def venue(self) -> Venue:
        return Venue.PAPER

    @property
    def capabilities(self) -> VenueCapabilities:
        return CAPABILITIES

    def status(self) -> ConnectionStatus:
        try:
            connected = self._bus.nc.is_connected
        except RuntimeError:
            connected = False
        state = ConnectionState.CONNECTED if connected else ConnectionState.DISCONNECTED
        return ConnectionStatus(state, "" if connected else "market data (NATS) not connected", 0, self._last_quote_ns)

    async def start(self, sink: ExecutionSink, checkpoints: Checkpoints) -> None:
        self._sink = sink

    async def stop(self) -> None:
        for sub in self._subs.values():
            try:
                await sub.unsubscribe()
            except Exception as exc:  # connection already closed
                log.debug("paper.unsubscribe_failed", error=repr(exc))
        self._subs.clear()

    async def _deliver(self, events: list[VenueExecution]) -> None:
        assert self._sink is not None
        await self._sink(events, False)

    async def _apply(self, quotes: Sequence[market_data_pb2.Quote]) -> None:
        if not quotes:
            return
        now = self._clock.now_ns()
        self._last_quote_ns = now
        async with self._lock:
            events: list[VenueExecution] = []
            for q in quotes:
                events += self.engine.on_quote(
                    q.symbol,
                    dec_or_none(q.bid_price, q.HasField("bid_price")),
                    dec_or_none(q.ask_price, q.HasField("ask_price")),
                    now,
                )
            await self._deliver(events)

    async def _on_msg(self, msg: Msg) -> None:
        try:
            await self._apply(quotes_of(msg.data))
        except Exception as exc:  # one bad message or a failed publish must not kill the subscription
            log.warning("paper.quote_failed", subject=msg.subject, error=repr(exc))

    async def ensure_symbol(self, symbol: str) -> None:
        if symbol in self._subs:
            return
        subject = f"{self._quote_prefix}.{symbol}"
        self._subs[symbol] = await self._bus.nc.subscribe(subject, cb=self._on_msg)
        if self.engine.mid(symbol) is None:
            try:
                last = await self._bus.js.get_last_msg(self._md_stream, subject)
                await self._apply(quotes_of(last.data or b"")[-1:])
            except NotFoundError:
                pass
            except Exception as exc:
                log.warning("paper.seed_failed", symbol=symbol, error=repr(exc))

    async def place(self, order: PlaceOrder) -> PlaceResult:
        await self.ensure_symbol(order.symbol)
        async with self._lock:
            result, events = self.engine.place(order, self._clock.now_ns())
            await self._deliver(events)
        return result

    async def cancel(self, cancel: CancelOrder) -> CancelResult:
        async with self._lock:
            events = self.engine.cancel(cancel, self._clock.now_ns())
            await self._deliver(events)
        return CancelResult(True)

    async def amend(self, amend: AmendOrder) -> AmendResult:
        async with self._lock:
            events = self.engine.amend(amend, self._clock.now_ns())
            await self._deliver(events)
        return AmendResult(True, paper_order_id(amend.account_id, amend.order_id))
