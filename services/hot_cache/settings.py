"""hot-cache settings (env prefix TRADE_: TRADE_BOOK_DEPTH, TRADE_VALKEY_URL, ...)."""

from __future__ import annotations

from pydantic import Field

from mesh.ports import load_ports
from services.runtime.settings import ServiceSettings


class HotCacheSettings(ServiceSettings):
    service_name: str = "hot_cache"
    port: int = Field(default_factory=lambda: load_ports().service("hot_cache"))
    key_prefix: str = "hc"
    book_depth: int = 20
    stream: str = "MD"
    quote_subject: str = "md.quote.>"
    trade_subject: str = "md.trade.>"
    book_subject: str = "md.book.>"
    durable_prefix: str = "hot-cache"
    batch_size: int = 1000
    # Collect a batch for up to this long once its first message arrived: at thousands of ticks/s a batch then
    # holds many updates of few keys (one Valkey write per key), instead of a round trip per handful of ticks.
    # It is also how stale the cache may be beyond the pipeline's own latency.
    linger_s: float = 0.02
