"""Binance spot market-data feed handler: public WebSocket streams (trade, bookTicker, depth diffs) to NATS.

Written from Binance's documented spot WebSocket/REST formats ("How to manage a local order book correctly").
NOT exercised against the live exchange (no internet where it was built): it is tested only against a local
aiohttp server that replays Binance-format fixtures (tests/fixtures/binance/), including a sequence gap and a
dropped connection.

Layout: ``protocol`` (frame parsing, plain data), ``book`` (the local book and the depth-sync state machine),
``ratelimit`` (reconnect backoff, REST weight governor) are pure and do no I/O; ``client`` holds the aiohttp
WebSocket/REST connections and the feed loop; ``publisher`` wraps frames in RawMarketData for NATS;
``__main__`` is the composition root (``python -m services.feeds.binance``).
"""
