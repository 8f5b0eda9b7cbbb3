"""Translates trade.hot_cache.v1 to the HotCache use cases and cached payloads back to protobuf."""

from __future__ import annotations

from typing import Any

import grpc
from trade.hot_cache.v1 import hot_cache_pb2, hot_cache_pb2_grpc
from trade.type.v1 import market_data_pb2

from services.hot_cache.domain.model import CacheKind, Lookup
from services.hot_cache.domain.service import HotCache
from services.runtime.errors import DomainError, ErrorKind
from services.runtime.status import to_status

Context = grpc.aio.ServicerContext[Any, Any]

_KINDS = {
    hot_cache_pb2.CACHE_KEY_KIND_QUOTE: CacheKind.QUOTE,
    hot_cache_pb2.CACHE_KEY_KIND_BOOK: CacheKind.BOOK,
    hot_cache_pb2.CACHE_KEY_KIND_LAST_TRADE: CacheKind.LAST_TRADE,
    hot_cache_pb2.CACHE_KEY_KIND_POSITION: CacheKind.POSITION,
    hot_cache_pb2.CACHE_KEY_KIND_PNL: CacheKind.PNL,
}


def _not_available(lookup: Lookup) -> DomainError:
    what = f"{lookup.kind.value} of {lookup.symbol!r}" if lookup.symbol else lookup.kind.value
    return DomainError(
        lookup.missing_reason or "DATA_NOT_AVAILABLE",
        f"no cached {what}",
        ErrorKind.NOT_FOUND,
        metadata={"kind": lookup.kind.value, "symbol": lookup.symbol},
    )


def _book(payload: bytes, depth: int) -> market_data_pb2.BookSnapshot:
    book = market_data_pb2.BookSnapshot.FromString(payload)
    if 0 < depth < max(len(book.bids), len(book.asks)):
        del book.bids[depth:]
        del book.asks[depth:]
        book.depth = depth
    return book


class HotCacheServicer(hot_cache_pb2_grpc.HotCacheServiceServicer):
    def __init__(self, cache: HotCache) -> None:
        self._cache = cache

    async def BatchGet(
        self, request: hot_cache_pb2.BatchGetRequest, context: Context
    ) -> hot_cache_pb2.BatchGetResponse:
        keys = [(_KINDS.get(k.kind), k.symbol) for k in request.keys]
        lookups = await self._cache.batch_get(request.account_id, keys)
        entries = []
        for requested, lookup in zip(request.keys, lookups, strict=True):
            entry = hot_cache_pb2.CacheEntry(key=requested)
            value = lookup.value
            if value is None:
                entry.error.CopyFrom(to_status(_not_available(lookup)))
            else:
                entry.update_time_ns = value.update_time_ns
                if lookup.kind is CacheKind.QUOTE:
                    entry.quote.ParseFromString(value.payload)
                elif lookup.kind is CacheKind.LAST_TRADE:
                    entry.last_trade.ParseFromString(value.payload)
                elif lookup.kind is CacheKind.BOOK:
                    entry.book.ParseFromString(value.payload)
            entries.append(entry)
        return hot_cache_pb2.BatchGetResponse(entries=entries)

    async def GetQuotes(
        self, request: hot_cache_pb2.GetQuotesRequest, context: Context
    ) -> hot_cache_pb2.GetQuotesResponse:
        lookups = await self._cache.quotes(list(request.symbols))
        return hot_cache_pb2.GetQuotesResponse(
            quotes=[market_data_pb2.Quote.FromString(lk.value.payload) for lk in lookups if lk.value is not None]
        )

    async def GetBook(self, request: hot_cache_pb2.GetBookRequest, context: Context) -> hot_cache_pb2.GetBookResponse:
        lookup = await self._cache.book(request.symbol)
        if lookup.value is None:
            raise _not_available(lookup)
        return hot_cache_pb2.GetBookResponse(book=_book(lookup.value.payload, request.depth))
