"""The aiohttp side of the Binance feed: REST depth snapshots and the combined WebSocket stream.

Not exercised against the live exchange (no internet where it was built); see the package docstring.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import structlog

from services.feeds.binance.book import DepthSync, Outcome
from services.feeds.binance.protocol import (
    DepthSnapshot,
    DepthUpdate,
    Frame,
    ProtocolError,
    combined_stream_url,
    parse_depth_snapshot,
    parse_frame,
)
from services.feeds.binance.ratelimit import Backoff, RestWeightGovernor, parse_retry_after
from services.feeds.binance.settings import BinanceFeedSettings

log = structlog.get_logger("feeds.binance")

USED_WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
# Binance: at most 1024 streams per connection. Streams are named in the URL, so no subscribe messages are sent
# and the 5 incoming-messages-per-second limit on client messages does not come into play.
MAX_STREAMS_PER_CONNECTION = 1024


class FeedSink(Protocol):
    """Where the feed hands what it receives, in the order the depth synchroniser saw it."""

    async def on_frame(self, frame: Frame, receive_time_ns: int) -> None: ...

    async def on_snapshot(self, snapshot: DepthSnapshot, body: bytes, receive_time_ns: int) -> None: ...


class RestError(Exception):
    """A REST call failed in a way a retry will not fix (4xx other than 429/418)."""


class _ServerError(Exception):
    """A 5xx answer: retried after a backoff."""


def depth_request_weight(limit: int) -> int:
    """Request weight of ``GET /api/v3/depth`` by ``limit`` (Binance spot API docs)."""
    if limit <= 100:
        return 5
    if limit <= 500:
        return 25
    if limit <= 1000:
        return 50
    return 250


class BinanceRest:
    """REST calls with weight pacing and 429/418 Retry-After handling; 5xx and network errors back off."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        governor: RestWeightGovernor,
        backoff: Backoff,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")
        self.governor = governor
        self._backoff = backoff
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._clock = clock
        self._sleep = sleep

    async def depth_snapshot(self, symbol: str, limit: int) -> tuple[DepthSnapshot, bytes]:
        weight = depth_request_weight(limit)
        url = f"{self._base_url}/api/v3/depth"
        while True:
            wait = self.governor.delay_before(weight, self._clock())
            if wait > 0:
                log.warning("binance.rest_paced", symbol=symbol, wait_s=round(wait, 3))
                await self._sleep(wait)
            try:
                async with self._session.get(
                    url, params={"symbol": symbol, "limit": str(limit)}, timeout=self._timeout
                ) as resp:
                    used = resp.headers.get(USED_WEIGHT_HEADER)
                    if used is not None and used.isdigit():
                        self.governor.observe_used_weight(int(used), self._clock())
                    if resp.status in (429, 418):
                        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                        wait = self.governor.observe_rate_limited(
                            retry_after, self._clock(), self._backoff.next_delay()
                        )
                        log.warning("binance.rest_rate_limited", status=resp.status, symbol=symbol, wait_s=wait)
                        continue  # delay_before() waits out the block
                    if resp.status >= 500:
                        raise _ServerError(f"HTTP {resp.status}")
                    if resp.status != 200:
                        raise RestError(f"GET {url} {symbol}: HTTP {resp.status}: {(await resp.text())[:200]}")
                    body = await resp.read()
                self._backoff.reset()
                return parse_depth_snapshot(symbol, body), body
            except (aiohttp.ClientError, TimeoutError, ProtocolError, _ServerError) as exc:
                delay = self._backoff.next_delay()
                log.warning("binance.rest_retry", symbol=symbol, error=repr(exc), backoff_s=round(delay, 3))
                await self._sleep(delay)


@dataclass
class FeedCounters:
    """What happened on the wire."""

    connections: int = 0
    disconnects: int = 0
    frames: int = 0
    malformed: int = 0
    snapshot_requests: int = 0


class BinanceFeed:
    """One combined-stream WebSocket for all symbols, a DepthSync per symbol, reconnect with backoff.

    Every received frame goes to the sink; each depth event also drives its symbol's ``DepthSync``, and a needed
    snapshot is fetched in the background while events keep buffering. A dropped connection resets every symbol's
    synchronisation (the depth stream's continuity is lost) and reconnects after a jittered exponential backoff.

    Publishing order per symbol: depth frames that arrive while a snapshot is awaited are held back and handed to
    the sink right after the snapshot the synchroniser accepted (stale ones included). Downstream therefore sees
    snapshot, then stale events, then the bridging event, then contiguous events, and can rebuild the book without
    a buffer of its own (the normalizer does exactly that). Trades and bookTickers are never held.
    """

    def __init__(
        self,
        settings: BinanceFeedSettings,
        sink: FeedSink,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.sink = sink
        self.symbols = tuple(s.upper() for s in settings.binance_symbols)
        self.syncs = {s: DepthSync(s, settings.binance_max_depth_buffer) for s in self.symbols}
        self.counters = FeedCounters()
        self._rng = rng or random.Random()
        self._backoff = Backoff(settings.binance_backoff_initial_s, settings.binance_backoff_cap_s, rng=self._rng)
        self._snapshot_tasks: dict[str, asyncio.Task[None]] = {}
        self._held: dict[str, list[tuple[Frame, int]]] = {s: [] for s in self.symbols}
        # Serialises a symbol's depth handling and its snapshot application, so that publishing order follows them.
        self._locks = {s: asyncio.Lock() for s in self.symbols}
        self._rest: BinanceRest | None = None
        streams = 3 * len(self.symbols)
        if not 0 < streams <= MAX_STREAMS_PER_CONNECTION:
            raise ValueError(f"{streams} streams; one connection carries 1..{MAX_STREAMS_PER_CONNECTION}")
        self.url = combined_stream_url(settings.binance_ws_url, self.symbols, settings.binance_depth_interval_ms)

    async def run(self) -> None:
        """Connect, read, reconnect, until cancelled."""
        async with aiohttp.ClientSession() as session:
            self._rest = BinanceRest(
                session,
                self.settings.binance_rest_url,
                RestWeightGovernor(limit_per_minute=self.settings.binance_rest_weight_limit_1m),
                Backoff(self.settings.binance_backoff_initial_s, self.settings.binance_backoff_cap_s, rng=self._rng),
                timeout_s=self.settings.binance_rest_timeout_s,
            )
            try:
                while True:
                    delay: float | None = None
                    try:
                        await self._read_connection(session)
                    except aiohttp.WSServerHandshakeError as exc:
                        retry_after = parse_retry_after(exc.headers.get("Retry-After") if exc.headers else None)
                        delay = max(self._backoff.next_delay(), retry_after or 0.0)
                        log.warning("binance.ws_rejected", status=exc.status, backoff_s=round(delay, 3))
                    except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
                        log.warning("binance.ws_error", error=repr(exc))
                    self.counters.disconnects += 1
                    await self._reset_all()
                    if delay is None:
                        delay = self._backoff.next_delay()
                    log.info("binance.reconnecting", backoff_s=round(delay, 3))
                    await asyncio.sleep(delay)
            finally:
                await self._cancel_snapshot_tasks()

    async def _read_connection(self, session: aiohttp.ClientSession) -> None:
        async with session.ws_connect(
            self.url,
            heartbeat=self.settings.binance_heartbeat_s,
            timeout=aiohttp.ClientWSTimeout(ws_receive=self.settings.binance_receive_timeout_s, ws_close=5.0),
            autoping=True,
            max_msg_size=16 * 1024 * 1024,
        ) as ws:
            self.counters.connections += 1
            log.info("binance.connected", url=self.url, connection=self.counters.connections)
            age_limit = asyncio.timeout(self.settings.binance_max_connection_age_s)
            try:
                async with age_limit:
                    async for msg in ws:
                        if msg.type is aiohttp.WSMsgType.TEXT:
                            await self._on_raw(msg.data.encode())
                        elif msg.type is aiohttp.WSMsgType.BINARY:
                            await self._on_raw(msg.data)
                        elif msg.type is aiohttp.WSMsgType.ERROR:
                            log.warning("binance.ws_error", error=repr(ws.exception()))
                            break
            except TimeoutError:
                if not age_limit.expired():
                    raise  # nothing received for binance_receive_timeout_s
                log.info("binance.connection_rotated", max_age_s=self.settings.binance_max_connection_age_s)
                return
            log.warning("binance.disconnected", close_code=ws.close_code)

    async def _on_raw(self, raw: bytes) -> None:
        receive_time_ns = time.time_ns()
        try:
            frame = parse_frame(raw)
        except ProtocolError as exc:
            self.counters.malformed += 1
            log.warning("binance.malformed_frame", error=str(exc), frame=raw[:200].decode(errors="replace"))
            return
        self.counters.frames += 1
        self._backoff.reset()
        if isinstance(frame.event, DepthUpdate) and frame.symbol in self.syncs:
            await self._on_depth(frame, frame.event, receive_time_ns)
        else:
            await self.sink.on_frame(frame, receive_time_ns)

    async def _on_depth(self, frame: Frame, update: DepthUpdate, receive_time_ns: int) -> None:
        symbol = update.symbol
        sync = self.syncs[symbol]
        async with self._locks[symbol]:
            outcome = sync.on_update(update)
            if outcome is Outcome.GAP:
                log.warning("binance.depth_gap", symbol=symbol, first_update_id=update.first_update_id)
            if sync.needs_snapshot:
                held = self._held[symbol]
                held.append((frame, receive_time_ns))
                if len(held) > self.settings.binance_max_depth_buffer:  # the synchroniser dropped it too
                    await self.sink.on_frame(*held.pop(0))
                self._ensure_snapshot_task(symbol)
            else:
                await self.sink.on_frame(frame, receive_time_ns)

    def _ensure_snapshot_task(self, symbol: str) -> None:
        task = self._snapshot_tasks.get(symbol)
        if task is None or task.done():
            self._snapshot_tasks[symbol] = asyncio.create_task(self._sync_symbol(symbol), name=f"snapshot:{symbol}")

    async def _sync_symbol(self, symbol: str) -> None:
        """Fetch snapshots until the symbol's synchroniser accepts one."""
        assert self._rest is not None
        sync = self.syncs[symbol]
        too_old = Backoff(self.settings.binance_backoff_initial_s, self.settings.binance_backoff_cap_s, rng=self._rng)
        while sync.needs_snapshot:
            self.counters.snapshot_requests += 1
            try:
                snapshot, body = await self._rest.depth_snapshot(symbol, self.settings.binance_depth_limit)
            except RestError as exc:
                delay = too_old.next_delay()
                log.error("binance.snapshot_failed", symbol=symbol, error=str(exc), retry_in_s=round(delay, 3))
                await asyncio.sleep(delay)
                continue
            async with self._locks[symbol]:
                outcome = sync.on_snapshot(snapshot)
                log.info(
                    "binance.snapshot", symbol=symbol, last_update_id=snapshot.last_update_id, outcome=outcome.value
                )
                if outcome is Outcome.SNAPSHOT_APPLIED:
                    await self.sink.on_snapshot(snapshot, body, time.time_ns())
                    await self._release_held(symbol)
            if outcome is Outcome.SNAPSHOT_TOO_OLD:
                await asyncio.sleep(too_old.next_delay())

    async def _release_held(self, symbol: str) -> None:
        """Hand over the held frames the synchroniser has processed; keep those still buffered (after a gap)."""
        still_buffered = {id(u) for u in self.syncs[symbol].buffered_events()}
        held, self._held[symbol] = self._held[symbol], []
        for frame, receive_time_ns in held:
            if id(frame.event) in still_buffered:
                self._held[symbol].append((frame, receive_time_ns))
            else:
                await self.sink.on_frame(frame, receive_time_ns)

    async def _reset_all(self) -> None:
        """After a disconnect: everything received is handed over, then every symbol starts a new sync."""
        await self._cancel_snapshot_tasks()
        for symbol, sync in self.syncs.items():
            held, self._held[symbol] = self._held[symbol], []
            for frame, receive_time_ns in held:
                await self.sink.on_frame(frame, receive_time_ns)
            sync.reset()

    async def _cancel_snapshot_tasks(self) -> None:
        tasks = list(self._snapshot_tasks.values())
        self._snapshot_tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
