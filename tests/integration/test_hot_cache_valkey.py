"""hot-cache against the real NATS and Valkey (the running service): events on md.* become cached quotes, last
trades and top-N books, an older event never overwrites a newer one, and batch reads report missing keys."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest
import redis.asyncio as redis
from trade.hot_cache.v1 import hot_cache_pb2, hot_cache_pb2_grpc
from trade.normalizer.v1 import events_pb2
from trade.type.v1 import decimal_pb2, market_data_pb2, venue_pb2

from mesh.ports import load_ports
from services.hot_cache.settings import HotCacheSettings
from services.runtime.bus import Bus
from services.runtime.status import error_info, status_from_trailers
from services.runtime.streams import MARKET_DATA

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
    for e in events:
        kind = e.WhichOneof("payload")
        prefix = {"quote": "quote", "trade": "trade", "book_delta": "book", "book_snapshot": "book"}[str(kind)]
        sym = getattr(e, str(kind)).symbol
        await bus.publish(f"md.{prefix}.{sym}", e.SerializeToString(), e.event_id)


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


def keys(sym: str, *kinds: hot_cache_pb2.CacheKeyKind.ValueType) -> list[hot_cache_pb2.CacheKey]:
    return [hot_cache_pb2.CacheKey(kind=k, symbol=sym) for k in kinds]


async def test_latest_quote_last_trade_and_top_of_book_are_served_from_valkey(
    bus: Bus, stub: hot_cache_pb2_grpc.HotCacheServiceAsyncStub
) -> None:
    sym = symbol()
    await publish(bus, quote(sym, 1, "99.5"), quote(sym, 2, "99.75"), trade(sym, 1, "100"), trade(sym, 2, "100.5"))
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


async def test_an_older_event_never_overwrites_a_newer_one(
    bus: Bus, stub: hot_cache_pb2_grpc.HotCacheServiceAsyncStub
) -> None:
    sym = symbol()
    await publish(bus, quote(sym, 5, "105"))
    request = hot_cache_pb2.GetQuotesRequest(symbols=[sym])

    async def has_quote() -> bool:
        return len((await stub.GetQuotes(request, timeout=5)).quotes) == 1

    await eventually(has_quote)
    late = quote(sym, 3, "103")
    late.event_id += ":late"
    await publish(bus, late, quote(sym, 6, "106"))

    async def at_6() -> bool:
        reply = await stub.GetQuotes(request, timeout=5)
        return bool(reply.quotes[0].sequence == 6)

    await eventually(at_6)
    valkey = redis.Redis.from_url(HotCacheSettings().valkey_url)
    try:
        assert await valkey.hget(f"hc:quote:{sym}", "seq") == b"6"
    finally:
        await valkey.aclose()


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
