"""sink-ticks settings (env prefix TRADE_: TRADE_QUESTDB_HTTP_URL, TRADE_BATCH_SIZE, ...)."""

from __future__ import annotations

from pydantic import Field

from mesh.ports import load_ports
from services.runtime.settings import ServiceSettings, infra_url


class SinkTicksSettings(ServiceSettings):
    service_name: str = "sink_ticks"
    port: int = Field(default_factory=lambda: load_ports().service("sink_ticks"))
    questdb_http_url: str = Field(default_factory=lambda: infra_url("http", "questdb_http"))
    trades_table: str = "trades"
    quotes_table: str = "quotes"
    bars_view: str = "ohlcv_1m"
    stream: str = "MD"
    trade_subject: str = "md.trade.>"
    quote_subject: str = "md.quote.>"
    durable_prefix: str = "sink-ticks"
    # One ILP flush per JetStream fetch, of at most batch_size MD messages and fetch_max_bytes bytes. A message
    # carries 1 to 256 events (the normalizer groups a subject's events), so the bytes bound the rows of a flush:
    # 4 MiB is about 38k trades (about 110 bytes each in a MarketDataBatch). Fewer, larger commits: draining 50k
    # trades in messages of 100, 1 MiB fetches gave 52-59k rows/s, 4 MiB 66-92k (bench/sink_ticks.py, 3 runs each,
    # 2026-11-26). With one batch handled and the next one prefetched, 2x batch_size stays within the consumer's
    # max_ack_pending (20000). fetch_max_bytes must exceed the largest MD message (a 256-event message of quotes is
    # about 50 KB).
    batch_size: int = 10_000
    fetch_max_bytes: int = 4 << 20
    # Each QuestDB commit costs a WAL transaction (and a refresh of ohlcv_1m): collect for up to this long (a full
    # batch goes at once). Ingesting the mesh's live ticks, QuestDB spent 39 % of a core at 0.5 s, 21 % at 2.0 s.
    linger_s: float = 2.0
    # Batches per consumer written concurrently. 1 measured best here (bench/sink_ticks.py; 2 is about even now that
    # flushes to a table are serialized): while a write is in flight, the next batch is received meanwhile.
    max_in_flight: int = 1
    ack_wait_s: float = 30.0
    # ILP client's own retry window per flush; the domain retries beyond it with backoff.
    ilp_retry_timeout_ms: int = 1000
    ilp_request_timeout_ms: int = 10_000

    def ilp_conf(self) -> str:
        addr = self.questdb_http_url.split("://", 1)[-1].rstrip("/")
        return (
            f"http::addr={addr};retry_timeout={self.ilp_retry_timeout_ms};"
            f"request_timeout={self.ilp_request_timeout_ms};auto_flush=off;"
        )
