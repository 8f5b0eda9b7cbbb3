"""The ILP-over-HTTP writer: one buffer per batch; the flush returns once QuestDB committed the rows (HTTP 2xx),
which is the moment the JetStream batch may be acknowledged.

Rows are encoded on the event loop's thread (CPU-bound; moving it to a worker thread only adds GIL hand-offs);
the flush, which waits on the network, runs in a worker thread. A small pool of senders lets concurrent batches
(trades and quotes consumers, several in-flight batches) be encoded while another batch flushes; flushes to one
table are serialized (with two batches in flight, concurrent flushes to the trades table took 2-3x longer in
total than the same flushes one after the other, bench/sink_ticks.py). A sender whose flush failed is closed and
replaced on next use."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from questdb import Sender, TimestampNanos

from services.sink_ticks.domain.model import QuoteRow, TradeRow


class QuestDbIlpWriter:
    def __init__(self, ilp_conf: str, trades_table: str, quotes_table: str, pool_size: int = 2) -> None:
        self._conf = ilp_conf
        self._trades = trades_table
        self._quotes = quotes_table
        self._free: asyncio.Queue[Sender | None] = asyncio.Queue()
        self._flushing = {trades_table: asyncio.Lock(), quotes_table: asyncio.Lock()}
        self._closed = False
        for _ in range(pool_size):
            self._free.put_nowait(None)

    def _connect(self) -> Sender:
        sender = Sender.from_conf(self._conf)
        sender.establish()  # type: ignore[no-untyped-call]
        return sender

    def _fill(self, buf: Any, trades: Sequence[TradeRow], quotes: Sequence[QuoteRow]) -> None:
        row, nanos = buf.row, TimestampNanos
        trades_table, quotes_table = self._trades, self._quotes
        for symbol, venue, trade_id, sequence, price, quantity, side, event_ns, receive_ns, publish_ns in trades:
            row(
                trades_table,
                symbols={"symbol": symbol, "venue": venue, "aggressor_side": side},
                columns={
                    "trade_id": trade_id,
                    "sequence": sequence,
                    "price": price,
                    "quantity": quantity,
                    "receive_ts": nanos(receive_ns),
                    "publish_ts": nanos(publish_ns),
                },
                at=nanos(event_ns or receive_ns or publish_ns),  # TradeRow.ts_ns, inlined
            )
        for q in quotes:
            row(
                quotes_table,
                symbols={"symbol": q.symbol, "venue": q.venue},
                columns={
                    "sequence": q.sequence,
                    "bid_price": q.bid_price,
                    "bid_size": q.bid_size,
                    "ask_price": q.ask_price,
                    "ask_size": q.ask_size,
                    "receive_ts": TimestampNanos(q.receive_time_ns),
                    "publish_ts": TimestampNanos(q.publish_time_ns),
                },
                at=TimestampNanos(q.ts_ns),
            )

    async def write(self, trades: Sequence[TradeRow], quotes: Sequence[QuoteRow]) -> None:
        sender = await self._free.get()
        try:
            if sender is None:
                sender = await asyncio.to_thread(self._connect)
            buf = sender.new_buffer()
            self._fill(buf, trades, quotes)
        except BaseException:
            self._discard(sender)
            raise
        tables = [table for table, rows in ((self._trades, trades), (self._quotes, quotes)) if rows]
        flush: asyncio.Future[None] | None = None
        try:
            async with contextlib.AsyncExitStack() as turn:
                for table in tables:  # always in the same order
                    await turn.enter_async_context(self._flushing[table])
                flush = asyncio.ensure_future(asyncio.to_thread(sender.flush, buf))
                await asyncio.shield(flush)
        except asyncio.CancelledError:
            if flush is None:
                self._free.put_nowait(sender)  # cancelled while waiting for its turn: the sender is untouched
            else:
                # The flush thread runs on: the sender is released only once it is done, never used by two threads.
                flush.add_done_callback(lambda done: self._release(sender, done))
            raise
        except Exception:
            if flush is None:
                self._discard(sender)
            else:
                self._release(sender, flush)
            raise
        self._release(sender, flush)

    def _release(self, sender: Sender, flush: asyncio.Future[None]) -> None:
        if self._closed or flush.cancelled() or flush.exception() is not None:
            # A failed flush may have left the connection broken: close it, never reuse it.
            self._discard(sender)
        else:
            self._free.put_nowait(sender)

    def _discard(self, sender: Sender | None) -> None:
        if sender is not None:
            with contextlib.suppress(Exception):
                sender.close(False)
        self._free.put_nowait(None)

    async def reset(self) -> None:
        """Nothing to do: a sender whose flush failed was already dropped from the pool."""

    async def close(self) -> None:
        """Close the idle senders; one still flushing closes itself when its flush ends."""
        self._closed = True
        while not self._free.empty():
            sender = self._free.get_nowait()
            if sender is not None:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(sender.close, False)
