"""With the mesh up (prism feeding, normalizer and marketdata running), a viewer streams live prism-derived quotes
and a book through the edge, with increasing sequence numbers, within a few seconds."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Any, TypeVar

import grpc
import pytest
from trade.marketdata.v1 import marketdata_pb2, marketdata_pb2_grpc
from trade.type.v1 import venue_pb2

from tests.support.edge import bearer, token_for

T = TypeVar("T")


def _take(stream: Iterator[T], cancel: Callable[[], object], want: int, within_s: float, field: str) -> list[T]:
    """The first ``want`` responses carrying ``field`` (heartbeats skipped), or fail after ``within_s``."""
    timer = threading.Timer(within_s, cancel)
    timer.start()
    out: list[T] = []
    try:
        for response in stream:
            if response.WhichOneof("payload") in field.split("|"):  # type: ignore[attr-defined]
                out.append(response)
                if len(out) >= want:
                    break
    except grpc.RpcError as error:
        pytest.fail(f"stream ended with {error.code()} after {len(out)} updates")
    finally:
        timer.cancel()
        cancel()
    return out


@pytest.fixture(scope="module")
def md(edge: grpc.Channel) -> tuple[marketdata_pb2_grpc.MarketDataServiceStub, tuple[tuple[str, str], ...]]:
    return marketdata_pb2_grpc.MarketDataServiceStub(edge), bearer(token_for(edge, "viewer"))


def test_viewer_streams_live_prism_quotes(
    md: tuple[marketdata_pb2_grpc.MarketDataServiceStub, tuple[tuple[str, str], ...]],
) -> None:
    stub, auth = md
    start = time.time_ns()
    call = stub.StreamQuotes(marketdata_pb2.StreamQuotesRequest(symbols=["BTCUSDT"]), metadata=auth)
    got = _take(call, call.cancel, 5, 10.0, "quote")
    quotes = [r.quote for r in got]
    assert len(quotes) == 5
    seqs = [q.sequence for q in quotes]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
    for q in quotes:
        assert q.symbol == "BTCUSDT" and q.venue == venue_pb2.VENUE_PRISM
        if q.bid_price.value and q.ask_price.value:  # a side swept empty for a moment is absent, not zero
            assert Decimal(q.bid_price.value) < Decimal(q.ask_price.value)
    assert any(q.bid_price.value and q.ask_price.value for q in quotes)
    assert quotes[-1].event_time_ns >= start, "a live update from the running feed, not only a replayed one"


def test_viewer_streams_live_prism_book(
    md: tuple[marketdata_pb2_grpc.MarketDataServiceStub, tuple[tuple[str, str], ...]],
) -> None:
    stub, auth = md
    call = stub.StreamBook(marketdata_pb2.StreamBookRequest(symbol="ETHUSDT", depth=10), metadata=auth)
    got = _take(call, call.cancel, 6, 10.0, "snapshot|delta")
    assert got[0].WhichOneof("payload") == "snapshot"
    snapshot = got[0].snapshot
    # a sweep can leave one side empty for a moment: the book built from snapshot + deltas is checked below
    assert snapshot.venue == venue_pb2.VENUE_PRISM and (snapshot.bids or snapshot.asks)
    book: dict[str, dict[Decimal, Decimal]] = {"bids": {}, "asks": {}}

    def apply(levels: dict[Decimal, Decimal], changes: Iterable[Any], replace: bool) -> None:
        if replace:
            levels.clear()
        for level in changes:
            price, quantity = Decimal(level.price.value), Decimal(level.quantity.value)
            if quantity:
                levels[price] = quantity
            else:
                levels.pop(price, None)

    apply(book["bids"], snapshot.bids, True)
    apply(book["asks"], snapshot.asks, True)
    last = snapshot.sequence
    deltas = 0
    for r in got[1:]:
        if r.WhichOneof("payload") == "delta":
            assert r.delta.sequence > last, (r.delta.sequence, last)  # a delta always moves the book sequence on
            last = r.delta.sequence
            deltas += 1
            apply(book["bids"], r.delta.bids, False)
            apply(book["asks"], r.delta.asks, False)
        else:
            assert r.snapshot.sequence >= last  # a periodic snapshot repeats it; a resync moves it on
            last = r.snapshot.sequence
            apply(book["bids"], r.snapshot.bids, True)
            apply(book["asks"], r.snapshot.asks, True)
    assert deltas > 0 and last > snapshot.sequence
    assert book["bids"] and book["asks"] and max(book["bids"]) < min(book["asks"])  # a live, uncrossed book
