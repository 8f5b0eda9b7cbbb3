"""hot-cache against the real NATS and Valkey: MD messages (several events each) on md.* become cached quotes, last
trades and top-N books (an in-process cache with its own durables and key prefix, served over gRPC), an older
event never overwrites a newer one, and batch reads of the running service report missing keys."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import grpc
import pytest
from trade.hot_cache.v1 import hot_cache_pb2, hot_cache_pb2_grpc
from trade.normalizer.v1 import events_pb2
from trade.type.v1 import decimal_pb2, market_data_pb2, venue_pb2

from mesh.ports import load_ports
from services.hot_cache.bootstrap import HotCacheApp, compose
from services.hot_cache.servicer import HotCacheServicer
from services.hot_cache.settings import HotCacheSettings
from services.runtime.bus import Bus
from services.runtime.interceptors import ServerInterceptor
from services.runtime.status import error_info, status_from_trailers
from services.runtime.streams import MARKET_DATA
from tests.support.marketdata import md_message

pytestmark = pytest.mark.usefixtures("mesh")

Q, B, T = hot_cache_pb2.CACHE_KEY_KIND_QUOTE, hot_cache_pb2.CACHE_KEY_KIND_BOOK, hot_cache_pb2.CACHE_KEY_KIND_LAST_TRADE


def D(value: str) -> decimal_pb2.Decimal:
    return decimal_pb2.Decimal(value=value)


def symbol() -> str:
    return f"TEST{uuid.uuid4().hex[:8].upper()}USDT"


def quote(sym: str, seq: int, bid: str) -> events_pb2.MarketDataEvent:
    return events_pb2.MarketDataEvent(
        event_id=f"quote:{sym}:{seq}",
        quote=market_data_pb2.Quote(
            symbol=sym, venue=venue_pb2.VENUE_PRISM, bid_price=D(bid), bid_size=D("1"), ask_price=D("200"),
            ask_size=D("2"), sequence=seq, event_time_ns=time.time_ns(),
        ),
    )  # fmt: skip


def trade(sym: str, seq: int, price: str) -> events_pb2.MarketDataEvent:
    return events_pb2.MarketDataEvent(
        event_id=f"trade:{sym}:{seq}",
        trade=market_data_pb2.Trade(
            symbol=sym, venue=venue_pb2.VENUE_PRISM, trade_id=f"T{seq}", price=D(price), quantity=D("0.5"),
            sequence=seq, event_time_ns=time.time_ns(),
        ),
    )  # fmt: skip


def level(price: str, qty: str) -> market_data_pb2.BookLevel:
    return market_data_pb2.BookLevel(price=D(price), quantity=D(qty))


def snapshot(sym: str, seq: int) -> events_pb2.MarketDataEvent:
    return events_pb2.MarketDataEvent(
        event_id=f"snapshot:{sym}:{seq}",
        book_snapshot=market_data_pb2.BookSnapshot(
            symbol=sym, venue=venue_pb2.VENUE_PRISM, sequence=seq,
            bids=[level("99", "1"), level("98", "2"), level("97", "3")],
            asks=[level("101", "1"), level("102", "2"), level("103", "3")],
        ),
    )  # fmt: skip


def delta(sym: str, seq: int, bids: list[market_data_pb2.BookLevel]) -> events_pb2.MarketDataEvent:
    return events_pb2.MarketDataEvent(
        event_id=f"book:{sym}:{seq}",
        book_delta=market_data_pb2.BookDelta(
            symbol=sym, venue=venue_pb2.VENUE_PRISM, sequence=seq, previous_sequence=seq - 1, bids=bids
        ),
    )


async def publish(bus: Bus, *events: events_pb2.MarketDataEvent) -> None:
    """One MD message (a MarketDataBatch) of the events, which share a subject."""
    kind = events[0].WhichOneof("payload")
    prefix = {"quote": "quote", "trade": "trade", "book_delta": "book", "book_snapshot": "book"}[str(kind)]
    sym = getattr(events[0], str(kind)).symbol
    await bus.publish(f"md.{prefix}.{sym}", md_message(*events), f"{events[0].event_id}+{len(events)}")


async def eventually(check: Callable[[], Awaitable[bool]], limit_s: float = 15.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


@pytest.fixture
async def bus() -> AsyncIterator[Bus]:
    bus = Bus(HotCacheSettings().nats_url, "test-hot-cache")
    await bus.connect()
    await bus.ensure_streams([MARKET_DATA])
    yield bus
    await bus.close()


@pytest.fixture
async def stub() -> AsyncIterator[hot_cache_pb2_grpc.HotCacheServiceAsyncStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{load_ports().service('hot_cache')}") as channel:
        yield hot_cache_pb2_grpc.HotCacheServiceStub(channel)


@dataclass
class Local:
    """An in-process hot-cache for one test symbol: its own durables, Valkey key prefix and gRPC server."""

    sym: str
    app: HotCacheApp
    stub: hot_cache_pb2_grpc.HotCacheServiceAsyncStub


@pytest.fixture
async def local() -> AsyncIterator[Local]:
    sym, tag = symbol(), uuid.uuid4().hex[:8]
    settings = HotCacheSettings(
        key_prefix=f"hctest{tag}",
        durable_prefix=f"test-hot-cache-{tag}",
        quote_subject=f"md.quote.{sym}",
        trade_subject=f"md.trade.{sym}",
        book_subject=f"md.book.{sym}",
    )
    app = compose(settings)
    await app.start()
    server = grpc.aio.server(interceptors=[ServerInterceptor()])
    hot_cache_pb2_grpc.add_HotCacheServiceServicer_to_server(HotCacheServicer(app.cache), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield Local(sym, app, hot_cache_pb2_grpc.HotCacheServiceStub(channel))
    finally:
        await server.stop(0)
        for kind in ("quotes", "trades", "books"):
            with contextlib.suppress(Exception):
                await app.bus.js.delete_consumer(settings.stream, f"{settings.durable_prefix}-{kind}")
        keys = [f"{settings.key_prefix}:{k}:{sym}" for k in ("quote", "trade", "book")]
        await app.valkey.delete(*keys, *(f"{settings.key_prefix}:symbols:{k}" for k in ("quote", "trade", "book")))
        await app.stop()


def keys(sym: str, *kinds: hot_cache_pb2.CacheKeyKind.ValueType) -> list[hot_cache_pb2.CacheKey]:
    return [hot_cache_pb2.CacheKey(kind=k, symbol=sym) for k in kinds]


async def test_latest_quote_last_trade_and_top_of_book_are_served_from_valkey(bus: Bus, local: Local) -> None:
    sym, stub = local.sym, local.stub
    await publish(bus, quote(sym, 1, "99.5"), quote(sym, 2, "99.75"))
    await publish(bus, trade(sym, 1, "100"), trade(sym, 2, "100.5"))
    await publish(bus, snapshot(sym, 10), delta(sym, 11, [level("99", "0"), level("99.5", "4")]))

    async def all_applied() -> bool:
        reply = await stub.BatchGet(
            hot_cache_pb2.BatchGetRequest(account_id="ACC-1", keys=keys(sym, Q, T, B)), timeout=5
        )
        return [e.quote.sequence or e.last_trade.sequence or e.book.sequence for e in reply.entries] == [2, 2, 11]

    await eventually(all_applied)
    reply = await stub.BatchGet(hot_cache_pb2.BatchGetRequest(account_id="ACC-1", keys=keys(sym, Q, T, B)), timeout=5)
    q, t, b = reply.entries
    assert (q.quote.sequence, q.quote.bid_price.value) == (2, "99.75")
    assert (t.last_trade.trade_id, t.last_trade.price.value) == ("T2", "100.5")
    assert [(lv.price.value, lv.quantity.value) for lv in b.book.bids] == [("99.5", "4"), ("98", "2"), ("97", "3")]
    assert all(e.update_time_ns > 0 and not e.HasField("error") for e in reply.entries)

    quotes = await stub.GetQuotes(hot_cache_pb2.GetQuotesRequest(symbols=[sym]), timeout=5)
    assert [x.sequence for x in quotes.quotes] == [2]
    book = await stub.GetBook(hot_cache_pb2.GetBookRequest(symbol=sym, depth=1), timeout=5)
    assert [lv.price.value for lv in book.book.bids] == ["99.5"] and [lv.price.value for lv in book.book.asks] == [
        "101"
    ]


async def test_book_deltas_of_one_message_apply_in_order_and_its_last_quote_wins(bus: Bus, local: Local) -> None:
    sym, stub = local.sym, local.stub
    await publish(bus, *(quote(sym, seq, f"99.{seq}") for seq in range(1, 8)))
    await publish(
        bus,
        snapshot(sym, 20),
        delta(sym, 21, [level("99", "0"), level("99.5", "4")]),  # removes 99, adds 99.5
        delta(sym, 22, [level("99.5", "7")]),  # only right if applied after 21
        delta(sym, 23, [level("98", "0")]),
    )

    async def all_applied() -> bool:
        reply = await stub.BatchGet(hot_cache_pb2.BatchGetRequest(account_id="ACC-1", keys=keys(sym, Q, B)), timeout=5)
        return [e.quote.sequence or e.book.sequence for e in reply.entries] == [7, 23]

    await eventually(all_applied)
    reply = await stub.BatchGet(hot_cache_pb2.BatchGetRequest(account_id="ACC-1", keys=keys(sym, Q, B)), timeout=5)
    q, b = reply.entries
    assert q.quote.bid_price.value == "99.7"
    assert [(lv.price.value, lv.quantity.value) for lv in b.book.bids] == [("99.5", "7"), ("97", "3")]
    counters = local.app.cache.counters
    assert (counters.received, counters.book_gaps, counters.malformed) == (11, 0, 0)


async def test_an_older_event_never_overwrites_a_newer_one(bus: Bus, local: Local) -> None:
    sym, stub = local.sym, local.stub
    await publish(bus, quote(sym, 5, "105"))
    request = hot_cache_pb2.GetQuotesRequest(symbols=[sym])

    async def has_quote() -> bool:
        return len((await stub.GetQuotes(request, timeout=5)).quotes) == 1

    await eventually(has_quote)
    late = quote(sym, 3, "103")
    late.event_id += ":late"
    await publish(bus, late)
    await publish(bus, quote(sym, 6, "106"))

    async def at_6() -> bool:
        reply = await stub.GetQuotes(request, timeout=5)
        return bool(reply.quotes[0].sequence == 6)

    await eventually(at_6)
    assert await local.app.valkey.hget(f"{local.app.settings.key_prefix}:quote:{sym}", "seq") == b"6"


async def test_missing_keys_and_positions_are_reported_per_entry_as_not_found(
    stub: hot_cache_pb2_grpc.HotCacheServiceAsyncStub,
) -> None:
    sym = symbol()
    request = hot_cache_pb2.BatchGetRequest(
        account_id="ACC-1", keys=keys(sym, Q, hot_cache_pb2.CACHE_KEY_KIND_POSITION, hot_cache_pb2.CACHE_KEY_KIND_PNL)
    )
    reply = await stub.BatchGet(request, timeout=5)
    assert [e.error.code for e in reply.entries] == [grpc.StatusCode.NOT_FOUND.value[0]] * 3
    reasons = [error_info(e.error) for e in reply.entries]
    assert all(r is not None and r.reason == "DATA_NOT_AVAILABLE" for r in reasons)

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetBook(hot_cache_pb2.GetBookRequest(symbol=sym), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_batch_read_without_account_or_over_500_keys_is_rejected(
    stub: hot_cache_pb2_grpc.HotCacheServiceAsyncStub,
) -> None:
    for request in (
        hot_cache_pb2.BatchGetRequest(keys=keys("BTCUSDT", Q)),
        hot_cache_pb2.BatchGetRequest(account_id="ACC-1", keys=keys("BTCUSDT", *([Q] * 501))),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.BatchGet(request, timeout=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        status = status_from_trailers(err.value.trailing_metadata())
        assert status is not None and error_info(status) is not None
