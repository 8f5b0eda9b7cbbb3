"""``python -m services.feeds.binance``: the Binance spot feed handler publishing to NATS (MD_RAW).

Does nothing unless TRADE_BINANCE_ENABLED=1: prism is the mesh's default venue and there is no internet here.
Not exercised against the live exchange.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

import structlog

from services.feeds.binance.client import BinanceFeed
from services.feeds.binance.publisher import NatsRawSink
from services.feeds.binance.settings import BinanceFeedSettings
from services.runtime.bus import Bus
from services.runtime.logging import configure_logging
from services.runtime.streams import MARKET_DATA_RAW


async def serve(settings: BinanceFeedSettings) -> None:
    log = structlog.get_logger("feeds.binance")
    if not settings.binance_enabled:
        log.info("binance.disabled", hint="set TRADE_BINANCE_ENABLED=1 to run the Binance spot feed")
        return
    bus = Bus(settings.nats_url, settings.service_name)
    await bus.connect()
    await bus.ensure_streams([MARKET_DATA_RAW])
    sink = NatsRawSink(bus, queue_size=settings.binance_publish_queue)
    feed = BinanceFeed(settings, sink)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(sink.run(), name="publisher"), asyncio.create_task(feed.run(), name="feed")]
    log.info("binance.started", symbols=list(feed.symbols), url=feed.url)
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
    publisher, reader = tasks
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    if not publisher.done():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(sink.drain(), timeout=settings.shutdown_grace_s)
    publisher.cancel()
    stopper.cancel()
    await asyncio.gather(publisher, stopper, return_exceptions=True)
    await bus.close()
    log.info("binance.stopped", published=sink.published)
    failed = [t for t in tasks if not t.cancelled() and t.exception() is not None]
    if failed:
        raise SystemExit(f"{failed[0].get_name()} failed: {failed[0].exception()!r}")


def main() -> None:
    settings = BinanceFeedSettings()
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
