"""Market-data fan-out through the edge: trades published to JetStream MD -> marketdata hub -> Envoy -> N clients.

For each fixed input rate (ticks/s, all bench symbols together), each subscriber count and each delivery mode
(``--batches``: 0 = unbatched, one update per stream message; N > 1 = the stream request's ``max_batch`` N with
``batch_window_ms``, so marketdata encodes each batch once for all streams of the same filter), side by side in
one run:

- a generator process publishes canonical trades to ``md.trade.BENCH<k>USDT`` (JetStream MD, ``MarketDataBatch``
  messages as the normalizer publishes them, pipelined async publish with at most 2000 acks in flight), paced at the
  rate: every ``--coalesce-ms`` (default 5) the ticks due since its last send go out grouped per symbol, as the
  normalizer groups the events of a fetch batch per subject. Each tick is stamped with the wall clock at which it was
  due, in ``publish_time_ns`` and in the trade's ``event_time_ns`` / ``receive_time_ns`` (what a client sees), so the
  wait to be grouped counts as latency; ``--coalesce-ms 0`` sends one tick per message. ``--generator go``
  (default): ``fanout-client publish``, the same Go binary as the subscribers (bench/fanout_client/publish.go,
  nats.go), publishing byte for byte the messages of the Python generator at a fraction of its CPU;
  ``--generator python`` (also the fallback when the binary can't be built): a Python process (nats-py
  ``publish_async``), which on a 2-core box needs ~30 % of a core at 5k/s one tick per message;
- the subscribers hold the N ``StreamTrades`` streams (one connection per stream, viewer token, through Envoy + JWT
  + OPA) and count the trades of the cell, the latency ``receive wall clock - event_time_ns``, sequence gaps and
  the dropped/conflated counters of the stream heartbeats. ``--client go`` (default): one Go process
  (bench/fanout_client, built into .cache/bin/fanout-client on first use or when its sources change; needs `go`)
  holds all N streams, so the cell measures the server rather than the clients; ``--client python``: ``--procs``
  grpc.aio processes share them (they saturate a small box well before marketdata does); ``--client both`` runs
  every cell once with each, one after the other. Every row says which client it used.

Trades are never conflated (a lagging stream drops the oldest), so every update is counted. Delivered/s is the
trades received by all subscribers over [first publish, last receive]. CPU% (of one core) of the mesh processes
and of the Go generator over each cell is read from /proc (the Python generator reports its own process time). The
table title and every cell of the JSON say which generator published. Prints a table and writes JSON to
bench/results/marketdata_fanout.json.

    .venv/bin/python -m bench.marketdata_fanout [--rates 1000,5000] [--subscribers 1,10,100] [--duration 6]
        [--client go|python|both] [--generator go|python] [--procs 2] [--publish js|core] [--kind trade|quote]
        [--batches 0,500] [--window-ms 5] [--source mesh|hub]

``--source hub`` measures marketdata's fan-out alone: its hub + servicer run in a bench process fed in-process at
the rate (no NATS store, no Envoy; clients connect directly) -> bench/results/marketdata_fanout_hub.json.

delivered % = received / (acked x subscribers): what is missing was either dropped by marketdata's bounded queue
(the heartbeat's dropped_count, matching the sequence gaps the clients see) or still in flight when the cell ended
(a cell drains until nothing arrived for 0.5 s, at most 8 s). ``--publish core`` publishes without waiting for
acks (MD still stores every message): it removes the publisher's in-flight bound, not the store's cost, and a
backlog it leaves in marketdata's consumer delays the next cell.

The input ceiling is MD's store: with the server's ``sync_interval: always`` every MD write is fsynced before the
ack (and before consumers see it), about 1.5-2k msg/s on the dev box whatever the number of acks in flight. A
per-stream ``persist_mode: async`` on MD (nats-server >= 2.12) lifts it while ORDERS/FILLS keep the fsync; the
JSON records MD's persist mode of the run (``md_stream``).

Needs the mesh up (`make up`). Side effect: the bench trades are real MD messages, so sink-ticks and hot-cache
also consume them (BENCH<k>USDT rows land in QuestDB's trades table).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import platform
import queue
import shutil
import subprocess
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from multiprocessing.queues import Queue as MpQueue
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

import grpc
import nats
import numpy as np
import typer
from rich.console import Console
from rich.table import Table
from trade.marketdata.v1 import marketdata_pb2, marketdata_pb2_grpc
from trade.normalizer.v1 import events_pb2
from trade.type.v1 import decimal_pb2, market_data_pb2, order_pb2, venue_pb2

from services.marketdata.bootstrap import SERVICE_NAME, build_hub, build_servicer
from services.marketdata.servicer import add_to_server
from services.marketdata.settings import MarketDataSettings
from services.runtime.server import Registration, start_server
from services.runtime.settings import infra_url
from tests.support.edge import EDGE, bearer, edge_channel, token_for

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]
GO_CLIENT_SRC = Path(__file__).resolve().parent / "fanout_client"
GO_CLIENT_BIN = ROOT / ".cache" / "bin" / "fanout-client"
DESCRIPTORS = ROOT / "var" / "run" / "api.binpb"  # written by the mesh: every proto of the repo
# Latency histogram: log-spaced bucket edges from 1 us to 100 s (about 2.3 % wide).
EDGES_US = np.logspace(0, 8, 801)
# Mesh processes whose CPU is sampled per cell: label -> substring of the command line.
MESH_PROCS = {
    "marketdata": "services.marketdata",
    "envoy": "var/run/envoy.yaml",
    "nats": "nats-server",
    "opa": "opa-envoy-plugin",
    "sink_ticks": "services.sink_ticks",
    "hot_cache": "services.hot_cache",
    "questdb": "io.questdb.ServerMain",
}
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------- generator process


def _update(kind: str, symbol: str, seq: int, now_ns: int) -> market_data_pb2.Quote | market_data_pb2.Trade:
    if kind == "quote":
        qty = decimal_pb2.Decimal(value="0.5")
        return market_data_pb2.Quote(
            symbol=symbol,
            venue=venue_pb2.VENUE_PAPER,
            bid_price=decimal_pb2.Decimal(value="100.25"),
            bid_size=qty,
            ask_price=decimal_pb2.Decimal(value="100.26"),
            ask_size=qty,
            sequence=seq,
            event_time_ns=now_ns,
            receive_time_ns=now_ns,
        )
    return market_data_pb2.Trade(
        symbol=symbol,
        venue=venue_pb2.VENUE_PAPER,
        trade_id=str(seq),
        price=decimal_pb2.Decimal(value="100.25"),
        quantity=decimal_pb2.Decimal(value="0.5"),
        aggressor_side=order_pb2.SIDE_BUY if seq % 2 else order_pb2.SIDE_SELL,
        sequence=seq,
        event_time_ns=now_ns,
        receive_time_ns=now_ns,
    )


def _event(kind: str, symbol: str, seq: int, now_ns: int) -> events_pb2.MarketDataEvent:
    update = _update(kind, symbol, seq, now_ns)
    event = events_pb2.MarketDataEvent(event_id=f"{kind}:{symbol}:{seq}", publish_time_ns=now_ns)
    if isinstance(update, market_data_pb2.Quote):
        event.quote.CopyFrom(update)
    else:
        event.trade.CopyFrom(update)
    return event


def _batch(events: list[events_pb2.MarketDataEvent]) -> bytes:
    return events_pb2.MarketDataBatch(events=events).SerializeToString()


def _messages(
    kind: str, symbols: list[str], base: int, first: int, due: int, stamp: Callable[[int], int]
) -> list[tuple[str, bytes, str, int]]:
    """The ticks [first, due) grouped per symbol, as the normalizer groups a batch: (subject, MarketDataBatch,
    Nats-Msg-Id, ticks) per symbol, symbols in the order of their first tick."""
    n = len(symbols)
    groups: dict[int, list[events_pb2.MarketDataEvent]] = {}
    for i in range(first, due):
        groups.setdefault(i % n, []).append(_event(kind, symbols[i % n], base + i // n + 1, stamp(i)))
    out = []
    for k, events in groups.items():
        symbol, seq = symbols[k], events[0].trade.sequence or events[0].quote.sequence
        out.append((f"md.{kind}.{symbol}", _batch(events), f"{kind}:{symbol}:{seq}+{len(events)}", len(events)))
    return out


def _ack_timer(into: array[int]) -> Any:
    """Done-callback recording publish -> JetStream ack (stored and, with sync_interval always, fsynced)."""
    start = time.monotonic_ns()

    def done(_: asyncio.Future[Any]) -> None:
        into.append(time.monotonic_ns() - start)

    return done


async def _generate(
    nats_url: str, symbols: list[str], rate: int, duration: float, base: int, mode: str, kind: str, coalesce_ms: float
) -> dict[str, Any]:
    """Every coalesce_ms, the ticks due since the last send go out grouped per symbol, each stamped with the time it
    was due (so the wait to be grouped counts as latency); coalesce_ms 0: one tick per message, stamped when sent."""
    nc = await nats.connect(nats_url, name="bench-marketdata-fanout")
    js = nc.jetstream(publish_async_max_pending=2000)
    futures: list[tuple[asyncio.Future[Any], int]] = []
    ack_ns: array[int] = array("q")
    cpu0 = time.process_time()
    first_ns = time.time_ns()
    t0 = time.monotonic()
    total = int(rate * duration)
    coalesce_s = coalesce_ms / 1000

    def stamp(i: int) -> int:
        return first_ns + int(i * 1e9 / rate) if coalesce_s else time.time_ns()

    pending: deque[tuple[str, bytes, str, int]] = deque()
    next_, sent, stalled, messages, last_send = 0, 0, 0, 0, t0
    try:
        while (elapsed := time.monotonic() - t0) < duration:
            due = min(int(rate * elapsed) + 1, total)
            if time.monotonic() - last_send < coalesce_s and due < total:
                await asyncio.sleep(0.001)
                continue
            last_send = time.monotonic()
            pending.extend(_messages(kind, symbols, base, next_, due, stamp))
            next_ = max(next_, due)
            while pending:
                subject, data, msg_id, ticks = pending[0]
                headers = {"Nats-Msg-Id": msg_id}
                if mode == "core":  # stored by MD all the same, but nobody waits for the ack
                    await nc.publish(subject, data, headers=headers)
                else:
                    try:
                        fut = await js.publish_async(subject, data, wait_stall=1.0, headers=headers)
                    except nats.js.errors.TooManyStalledMsgsError:
                        stalled += 1
                        break
                    fut.add_done_callback(_ack_timer(ack_ns))
                    futures.append((fut, ticks))
                pending.popleft()
                sent += ticks
                messages += 1
            await asyncio.sleep(0.001)
        last_ns = time.time_ns()
        publish_window = time.monotonic() - t0
        done, left = await asyncio.wait([f for f, _ in futures], timeout=15) if futures else (set(), set())
        ack_window = time.monotonic() - t0
        acked = sum(n for f, n in futures if f in done and not f.cancelled() and f.exception() is None)
        if mode == "core":
            await nc.flush(timeout=15)
            acked, ack_window = sent, time.monotonic() - t0
        for f in left:
            f.cancel()
    finally:
        await nc.close()
    return {
        "target_rate": rate,
        "sent": sent,
        "acked": acked,
        "failed": sent - acked,
        "stalls": stalled,
        "messages": messages,
        "publish_window_s": publish_window,
        "acked_rate": acked / ack_window if ack_window else 0.0,
        "first_publish_ns": first_ns,
        "last_publish_ns": last_ns,
        "cpu_s": time.process_time() - cpu0,
        "ack_p50_ms": float(np.percentile(np.asarray(ack_ns) / 1e6, 50)) if ack_ns else float("nan"),
        "ack_p99_ms": float(np.percentile(np.asarray(ack_ns) / 1e6, 99)) if ack_ns else float("nan"),
    }


def generator_proc(
    nats_url: str,
    symbols: list[str],
    rate: int,
    duration: float,
    base: int,
    mode: str,
    kind: str,
    coalesce_ms: float,
    out: MpQueue[dict[str, Any]],
) -> None:
    out.put(asyncio.run(_generate(nats_url, symbols, rate, duration, base, mode, kind, coalesce_ms)))


# ---------------------------------------------------------------------------------------------- --source hub


class _NoBars:
    async def bars(self, symbol: str, interval: Any, start_ns: int, end_ns: int, limit: int) -> list[Any]:
        return []


async def _hub_serve(
    kind: str,
    symbols: list[str],
    rate: int,
    duration: float,
    base: int,
    port_out: MpQueue[int],
    go: MpEvent,
    stop: MpEvent,
    out: MpQueue[dict[str, Any]],
) -> None:
    """marketdata's own hub + servicer on a free port, fed in-process at the rate (no NATS, no Envoy)."""
    settings = MarketDataSettings(port=0, log_json=False, log_level="WARNING")
    md = build_hub(settings)
    servicer = build_servicer(settings, md, _NoBars())
    registration = Registration(add_to_server=lambda s: add_to_server(servicer, s), service_names=[SERVICE_NAME])
    server = await start_server(settings, registration)
    port_out.put(server.port)
    try:
        await asyncio.to_thread(go.wait, 120)
        feed = md.on_quote if kind == "quote" else md.on_trade
        first_ns = time.time_ns()
        t0 = time.monotonic()
        sent = 0
        while (elapsed := time.monotonic() - t0) < duration:
            due = min(int(rate * elapsed) + 1, int(rate * duration))
            while sent < due:
                symbol = symbols[sent % len(symbols)]
                feed(_update(kind, symbol, base + sent // len(symbols) + 1, time.time_ns()))
                sent += 1
            await asyncio.sleep(0.001)
        window = time.monotonic() - t0
        out.put(
            {
                "target_rate": rate,
                "sent": sent,
                "acked": sent,
                "stalls": 0,
                "publish_window_s": window,
                "acked_rate": sent / window,
                "first_publish_ns": first_ns,
                "cpu_s": 0.0,  # the feed runs inside marketdata's process: its CPU is in the marketdata column
                "ack_p50_ms": float("nan"),
                "ack_p99_ms": float("nan"),
            }
        )
        await asyncio.to_thread(stop.wait, 120)
    finally:
        await server.stop()


def hub_proc(
    kind: str,
    symbols: list[str],
    rate: int,
    duration: float,
    base: int,
    port_out: MpQueue[int],
    go: MpEvent,
    stop: MpEvent,
    out: MpQueue[dict[str, Any]],
) -> None:
    asyncio.run(_hub_serve(kind, symbols, rate, duration, base, port_out, go, stop, out))


# ---------------------------------------------------------------------------------------------- subscriber process


@dataclass
class _Stream:
    base: int
    received: int = 0
    gaps: int = 0
    dropped: int = 0
    conflated: int = 0
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    last_recv_ns: int = 0
    last_seq: dict[str, int] = field(default_factory=dict)
    latencies_ns: array[int] = field(default_factory=lambda: array("q"))


async def _stream(
    stub: marketdata_pb2_grpc.MarketDataServiceStub,
    token: str,
    symbols: list[str],
    kind: str,
    batch: tuple[int, int],
    st: _Stream,
) -> None:
    call: Any  # a grpc.aio call (the generated stub is typed for the sync API)
    max_batch, window_ms = batch
    if kind == "quote":
        request: Any = marketdata_pb2.StreamQuotesRequest(
            symbols=symbols, max_batch=max_batch, batch_window_ms=window_ms
        )
        call = stub.StreamQuotes(request, metadata=bearer(token))
    else:
        request = marketdata_pb2.StreamTradesRequest(symbols=symbols, max_batch=max_batch, batch_window_ms=window_ms)
        call = stub.StreamTrades(request, metadata=bearer(token))
    lat = st.latencies_ns
    last_seq = st.last_seq
    items = "quotes" if kind == "quote" else "trades"
    async for resp in call:
        now = time.time_ns()
        st.opened.set()
        which = resp.WhichOneof("payload")
        if which == "heartbeat":
            st.dropped = resp.heartbeat.dropped_count
            st.conflated = resp.heartbeat.conflated_count
            continue
        updates = getattr(resp.batch, items) if which == "batch" else (getattr(resp, kind),)
        for u in updates:
            seq = u.sequence
            if seq <= st.base:
                continue  # a late update of an earlier cell
            st.received += 1
            st.last_recv_ns = now
            lat.append(now - u.event_time_ns)
            prev = last_seq.get(u.symbol)
            if prev is not None and seq > prev + 1:
                st.gaps += seq - prev - 1
            last_seq[u.symbol] = seq


async def _subscribe(
    target: str,
    token: str,
    symbols: list[str],
    kind: str,
    batch: tuple[int, int],
    n: int,
    base: int,
    ready: MpQueue[str],
    stop: MpEvent,
    progress: Synchronized[int],
) -> dict[str, Any]:
    channels = [grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) for _ in range(n)]
    streams = [_Stream(base) for _ in range(n)]
    tasks = [
        asyncio.create_task(_stream(marketdata_pb2_grpc.MarketDataServiceStub(ch), token, symbols, kind, batch, st))
        for ch, st in zip(channels, streams, strict=True)
    ]
    errors: list[str] = []
    try:
        try:  # the first heartbeat (within heartbeat_interval_s) shows the stream is subscribed
            await asyncio.wait_for(asyncio.gather(*(st.opened.wait() for st in streams)), 15)
            ready.put("ready")
        except TimeoutError:
            ready.put("not ready")
        cpu0 = time.process_time()
        deadline = time.monotonic() + 120
        while not stop.is_set() and time.monotonic() < deadline:
            progress.value = sum(st.received for st in streams)
            await asyncio.sleep(0.1)
        cpu = time.process_time() - cpu0
    finally:
        for t in tasks:
            t.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        errors = [
            repr(r) for r in results if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)
        ]
        for ch in channels:
            await ch.close()
    lat_us = np.concatenate([np.frombuffer(st.latencies_ns, dtype=np.int64) for st in streams]) / 1e3
    hist, _ = np.histogram(np.clip(lat_us, 1, 1e8), bins=EDGES_US)
    return {
        "streams": n,
        "received": sum(st.received for st in streams),
        "gaps": sum(st.gaps for st in streams),
        "dropped": sum(st.dropped for st in streams),
        "conflated": sum(st.conflated for st in streams),
        "last_recv_ns": max(st.last_recv_ns for st in streams),
        "max_latency_us": float(lat_us.max()) if lat_us.size else float("nan"),
        "hist": hist.tolist(),
        "cpu_s": cpu,
        "errors": errors[:3],
    }


def subscriber_proc(
    target: str,
    token: str,
    symbols: list[str],
    kind: str,
    batch: tuple[int, int],
    n: int,
    base: int,
    ready: MpQueue[str],
    stop: MpEvent,
    progress: Synchronized[int],
    out: MpQueue[dict[str, Any]],
) -> None:
    out.put(asyncio.run(_subscribe(target, token, symbols, kind, batch, n, base, ready, stop, progress)))


# ---------------------------------------------------------------------------------------------- Go subscriber


def build_go_client(console: Console) -> Path | None:
    """Build bench/fanout_client into .cache/bin when missing or older than its sources; None when it can't."""
    sources = [*GO_CLIENT_SRC.glob("*.go"), GO_CLIENT_SRC / "go.mod", GO_CLIENT_SRC / "go.sum"]
    if GO_CLIENT_BIN.exists() and all(
        src.stat().st_mtime <= GO_CLIENT_BIN.stat().st_mtime for src in sources if src.exists()
    ):
        return GO_CLIENT_BIN
    go = shutil.which("go")
    if go is None:
        console.print("[yellow]no `go` on PATH: cannot build the Go client[/yellow]")
        return None
    cache = ROOT / ".cache" / "go"
    env = {
        **os.environ,
        "GOCACHE": str(cache / "build"),
        "GOMODCACHE": str(cache / "mod"),
        "GOFLAGS": "-mod=mod -modcacherw -buildvcs=false",
    }
    console.print(f"[dim]building {GO_CLIENT_BIN.relative_to(ROOT)} (go build, first time takes minutes) ...[/dim]")
    GO_CLIENT_BIN.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [go, "build", "-o", str(GO_CLIENT_BIN), "."],
        cwd=GO_CLIENT_SRC,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        console.print(f"[yellow]go build of the Go client failed:[/yellow]\n{done.stderr[-2000:]}")
        return None
    return GO_CLIENT_BIN


class GoSubscribers:
    """One fanout-client process holding all the streams of a cell; line protocol in bench/fanout_client/main.go."""

    def __init__(
        self,
        binary: Path,
        target: str,
        token: str,
        symbols: list[str],
        kind: str,
        batch: tuple[int, int],
        n: int,
        base: int,
    ) -> None:
        self.states: queue.Queue[str] = queue.Queue()
        self.received = 0
        self.result: dict[str, Any] | None = None
        self.proc = subprocess.Popen(
            [str(binary)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        config = {
            "target": target,
            "token": token,
            "kind": kind,
            "symbols": symbols,
            "max_batch": batch[0],
            "batch_window_ms": batch[1],
            "streams": n,
            "base": base,
            "descriptors": str(DESCRIPTORS),
            "edges_us": EDGES_US.tolist(),
        }
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(config) + "\n")
        self.proc.stdin.flush()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            word, _, rest = line.rstrip("\n").partition(" ")
            if word == "progress":
                self.received = int(rest)
            elif word == "result":
                result = json.loads(rest)
                if result["max_latency_us"] is None:
                    result["max_latency_us"] = float("nan")
                self.result = result
            else:
                self.states.put(line.strip())
        self.states.put("exited")

    def stop(self) -> dict[str, Any]:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.write("stop\n")
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        self._reader.join(timeout=30)
        self.proc.wait(timeout=10)
        if self.result is None:
            raise RuntimeError(f"fanout-client exited with {self.proc.returncode} and no result")
        return self.result

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


class GoGenerator:
    """`fanout-client publish`: the Go twin of _generate (same messages, pacing and result keys), see publish.go.

    After its result line the process idles until stdin closes, so its CPU ticks can still be read from /proc.
    """

    def __init__(
        self,
        binary: Path,
        nats_url: str,
        symbols: list[str],
        rate: int,
        duration: float,
        base: int,
        mode: str,
        kind: str,
        coalesce_ms: float,
    ) -> None:
        self.duration = duration
        self.lines: queue.Queue[str] = queue.Queue()
        self.proc = subprocess.Popen(
            [str(binary), "publish"], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        config = {
            "nats_url": nats_url,
            "symbols": symbols,
            "rate": rate,
            "duration": duration,
            "base": base,
            "mode": mode,
            "kind": kind,
            "descriptors": str(DESCRIPTORS),
            "max_pending": 2000,
            "stall_wait_s": 1.0,
            "ack_wait_s": 15.0,
            "coalesce_ms": coalesce_ms,
        }
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(config) + "\n")
        self.proc.stdin.flush()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put("exited")

    def result(self) -> tuple[dict[str, Any], float]:
        """The generator's result and the CPU seconds of its whole process (from /proc, like the mesh's)."""
        deadline = time.monotonic() + self.duration + 60
        while (line := self.lines.get(timeout=max(0.1, deadline - time.monotonic()))) != "exited":
            word, _, rest = line.partition(" ")
            if word == "result":
                result: dict[str, Any] = json.loads(rest)
                for key in ("ack_p50_ms", "ack_p99_ms"):
                    if result[key] is None:
                        result[key] = float("nan")
                ticks = _cpu_ticks({"gen": self.proc.pid}).get("gen")
                cpu_s = ticks / CLK_TCK if ticks is not None else float(result["cpu_s"])
                self.close()
                return result, cpu_s
        self.proc.wait(timeout=10)
        raise RuntimeError(f"fanout-client publish exited with {self.proc.returncode} and no result")

    def close(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


# ---------------------------------------------------------------------------------------------- orchestration


async def _md_stream(nats_url: str) -> dict[str, Any]:
    """How MD stores what the generator publishes (the input ceiling depends on it)."""
    nc = await nats.connect(nats_url, name="bench-marketdata-fanout-info")
    try:
        info = await nc.jetstream().stream_info("MD")
        mode = info.config.persist_mode
        return {
            "storage": str(getattr(info.config.storage, "value", info.config.storage)),
            "persist_mode": str(getattr(mode, "value", mode))
            if mode
            else "default (flush + the server's sync_interval)",
            "consumers": info.state.consumer_count,
            "messages": info.state.messages,
        }
    finally:
        await nc.close()


def _mesh_pids() -> dict[str, int]:
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        for label, needle in MESH_PROCS.items():
            if needle in cmdline and label not in found and "bench." not in cmdline:
                found[label] = int(entry.name)
    return found


def _cpu_ticks(pids: dict[str, int]) -> dict[str, int]:
    out = {}
    for label, pid in pids.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[label] = int(fields[11]) + int(fields[12])  # utime + stime
    return out


def _box_cpu() -> list[int]:
    """Machine-wide jiffies: user nice system idle iowait irq softirq steal."""
    return [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]


def _percentile_ms(hist: np.ndarray[Any, Any], q: float) -> float:
    total = int(hist.sum())
    if total == 0:
        return float("nan")
    idx = int(np.searchsorted(np.cumsum(hist), q * total))
    return float(EDGES_US[min(idx + 1, len(EDGES_US) - 1)]) / 1e3  # upper edge of the bucket


@dataclass
class Cell:
    client: str
    generator: str
    input_rate: int
    max_batch: int
    batch_window_ms: int
    subscribers: int
    subscriber_procs: int
    published: int
    acked: int
    publish_rate: float
    publish_stalls: int
    md_messages: int
    pub_ack_p50_ms: float
    pub_ack_p99_ms: float
    expected: int
    received: int
    delivered_per_s: float
    delivered_pct: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    hb_dropped: int
    hb_conflated: int
    seq_gaps: int
    window_s: float
    cpu_pct: dict[str, float]
    errors: list[str]


def run_cell(
    ctx: Any,
    token: str,
    symbols: list[str],
    rate: int,
    subs: int,
    procs: int,
    duration: float,
    pids: dict[str, int],
    mode: str,
    kind: str,
    batch: tuple[int, int],
    source: str,
    go_client: Path | None,
    go_generator: Path | None,
    coalesce_ms: float,
) -> Cell:
    """One cell; go_client (the built fanout-client) holds the streams, or Python processes when it is None;
    go_generator (the same binary) publishes, or a Python generator process when it is None (--source mesh)."""
    base = time.time_ns() // 1000  # per-cell sequences: unique event ids, and late trades of a cell are ignored
    nprocs = 1 if go_client is not None else max(1, min(procs, subs))
    shares = [subs // nprocs + (1 if i < subs % nprocs else 0) for i in range(nprocs)]
    ready: MpQueue[str] = ctx.Queue()
    out: MpQueue[dict[str, Any]] = ctx.Queue()
    gen_out: MpQueue[dict[str, Any]] = ctx.Queue()
    stop: MpEvent = ctx.Event()
    go: MpEvent = ctx.Event()
    hub_stop: MpEvent = ctx.Event()  # after the subscribers closed their streams
    counters = [ctx.Value("q", 0, lock=False) for _ in shares]
    target, hub = EDGE, None
    if source == "hub":
        port_out: MpQueue[int] = ctx.Queue()
        hub = ctx.Process(
            target=hub_proc, args=(kind, symbols, rate, duration, base, port_out, go, hub_stop, gen_out), daemon=True
        )
        hub.start()
        target = f"127.0.0.1:{port_out.get(timeout=60)}"
        pids = {"marketdata": hub.pid or 0}
    workers = (
        []
        if go_client is not None
        else [
            ctx.Process(
                target=subscriber_proc,
                args=(target, token, symbols, kind, batch, n, base, ready, stop, c, out),
                daemon=True,
            )
            for n, c in zip(shares, counters, strict=True)
        ]
    )
    go_subs = GoSubscribers(go_client, target, token, symbols, kind, batch, subs, base) if go_client else None
    for w in workers:
        w.start()

    def received_so_far() -> int:
        return go_subs.received if go_subs is not None else sum(c.value for c in counters)

    try:
        states = [go_subs.states.get(timeout=60)] if go_subs else [ready.get(timeout=60) for _ in workers]
        if any(s != "ready" for s in states):
            raise RuntimeError(f"subscribers not ready: {states}")
        cpu0, box0, t0 = _cpu_ticks(pids), _box_cpu(), time.monotonic()
        gen_cpu_s: float | None = None  # the Go generator's CPU from /proc; else the generator reports it
        if hub is not None:
            go.set()
            g = gen_out.get(timeout=duration + 60)
        elif go_generator is not None:
            nats_url = infra_url("nats", "nats")
            go_gen = GoGenerator(go_generator, nats_url, symbols, rate, duration, base, mode, kind, coalesce_ms)
            try:
                g, gen_cpu_s = go_gen.result()
            finally:
                go_gen.close()
        else:
            gen = ctx.Process(
                target=generator_proc,
                args=(infra_url("nats", "nats"), symbols, rate, duration, base, mode, kind, coalesce_ms, gen_out),
            )
            gen.start()
            g = gen_out.get(timeout=duration + 60)
            gen.join(timeout=10)
        # Drain: until no subscriber received anything for 0.5 s (at least 1.2 s: a heartbeat after the last
        # trade carries the final drop counters), at most 8 s.
        drain_start, last_total, last_change = time.monotonic(), -1, time.monotonic()
        while time.monotonic() - drain_start < 8:
            total = received_so_far()
            if total != last_total:
                last_total, last_change = total, time.monotonic()
            elif time.monotonic() - last_change > 0.5 and time.monotonic() - drain_start > 1.2:
                break
            time.sleep(0.1)
        stop.set()
        results = [go_subs.stop()] if go_subs is not None else [out.get(timeout=30) for _ in workers]
        cpu1, box1, t1 = _cpu_ticks(pids), _box_cpu(), time.monotonic()
    finally:
        stop.set()
        if go_subs is not None:
            go_subs.kill()
        for w in workers:
            w.join(timeout=10)
        if hub is not None:
            hub_stop.set()
            hub.join(timeout=10)
    hist = np.sum([np.asarray(r["hist"]) for r in results], axis=0)
    received = sum(int(r["received"]) for r in results)
    last_recv = max(int(r["last_recv_ns"]) for r in results)
    window = max(1e-9, (last_recv - g["first_publish_ns"]) / 1e9) if received else float(g["publish_window_s"])
    expected = int(g["acked"]) * subs
    wall = t1 - t0
    cpu_pct = {k: round(100 * (cpu1[k] - cpu0.get(k, cpu1[k])) / CLK_TCK / wall, 1) for k in cpu1}
    cpu_pct["bench_clients"] = round(100 * sum(float(r["cpu_s"]) for r in results) / wall, 1)
    cpu_pct["bench_generator"] = round(100 * (gen_cpu_s if gen_cpu_s is not None else float(g["cpu_s"])) / wall, 1)
    box = [b - a for a, b in zip(box0, box1, strict=True)]
    cpu_pct["box_busy_of_all_cores"] = round(100 * (sum(box) - box[3] - box[4]) / max(1, sum(box)), 1)
    cpu_pct["box_iowait_of_all_cores"] = round(100 * box[4] / max(1, sum(box)), 1)
    return Cell(
        client="go" if go_client is not None else "python",
        generator="in-process" if hub is not None else "go" if go_generator is not None else "python",
        input_rate=rate,
        max_batch=batch[0],
        batch_window_ms=batch[1],
        subscribers=subs,
        subscriber_procs=nprocs,
        published=int(g["sent"]),
        acked=int(g["acked"]),
        publish_rate=round(float(g["acked_rate"]), 1),
        publish_stalls=int(g["stalls"]),
        md_messages=int(g.get("messages", g["sent"])),
        pub_ack_p50_ms=round(float(g["ack_p50_ms"]), 2),
        pub_ack_p99_ms=round(float(g["ack_p99_ms"]), 2),
        expected=expected,
        received=received,
        delivered_per_s=round(received / window, 1),
        delivered_pct=round(100 * received / expected, 2) if expected else 0.0,
        p50_ms=round(_percentile_ms(hist, 0.50), 2),
        p99_ms=round(_percentile_ms(hist, 0.99), 2),
        max_ms=round(max(float(r["max_latency_us"]) for r in results) / 1e3, 2),
        hb_dropped=sum(int(r["dropped"]) for r in results),
        hb_conflated=sum(int(r["conflated"]) for r in results),
        seq_gaps=sum(int(r["gaps"]) for r in results),
        window_s=round(window, 2),
        cpu_pct=cpu_pct,
        errors=[e for r in results for e in r["errors"]][:3],
    )


def main(
    rates: str = typer.Option("1000,5000", help="input rates (ticks/s over all bench symbols), comma separated"),
    subscribers: str = typer.Option("1,10,100", help="concurrent subscriber counts, comma separated"),
    duration: float = typer.Option(6.0, help="seconds of publishing per cell"),
    symbols: int = typer.Option(4, help="bench symbols BENCH<k>USDT; every subscriber streams all of them"),
    client: str = typer.Option(
        "go",
        help="go: one Go process holds all streams (falls back to python when it can't be built); python: --procs "
        "grpc.aio processes; both: every cell with each client, one after the other",
    ),
    procs: int = typer.Option(2, help="Python subscriber processes per cell (streams are split among them)"),
    kind: str = typer.Option(
        "trade", help="trade (never conflated) or quote (conflated per symbol when a client lags)"
    ),
    publish: str = typer.Option(
        "js", help="js: pipelined JetStream publish_async, acked; core: plain NATS publish (MD stores it, no ack)"
    ),
    batches: str = typer.Option(
        "0,500", help="max_batch per stream, side by side in every cell; 0 = unbatched (one update per message)"
    ),
    window_ms: int = typer.Option(5, help="batch_window_ms of the batched streams"),
    source: str = typer.Option(
        "mesh",
        help="mesh: publish to JetStream MD, stream through Envoy from the mesh's marketdata; hub: fan-out only "
        "(marketdata's hub + servicer in a bench process fed in-process at the rate, clients connect directly)",
    ),
    generator: str = typer.Option(
        "go",
        help="--source mesh publisher: go = `fanout-client publish` (falls back to python when it can't be built); "
        "python = a Python process (asyncio nats-py)",
    ),
    coalesce_ms: float = typer.Option(
        5.0,
        help="--source mesh: the generator sends the ticks due since its last send every N ms, grouped per symbol "
        "(as the normalizer groups a fetch batch), each stamped with the time it was due; 0 = one tick per message",
    ),
) -> None:
    if kind not in ("trade", "quote"):
        raise typer.BadParameter("--kind must be trade or quote")
    if source not in ("mesh", "hub"):
        raise typer.BadParameter("--source must be mesh or hub")
    if publish not in ("js", "core"):
        raise typer.BadParameter("--publish must be js or core")
    if client not in ("go", "python", "both"):
        raise typer.BadParameter("--client must be go, python or both")
    if generator not in ("go", "python"):
        raise typer.BadParameter("--generator must be go or python")
    console = Console(width=240)
    go_generator = generator == "go" and source == "mesh"
    go_binary = build_go_client(console) if client in ("go", "both") or go_generator else None
    go_client = go_binary if client in ("go", "both") else None
    gen_binary = go_binary if go_generator else None
    if go_generator and gen_binary is None:
        console.print("[yellow]the Go generator is unavailable: publishing with the Python generator[/yellow]")
    gen_name = "in-process" if source == "hub" else "go" if gen_binary is not None else "python"
    clients: list[Path | None] = [go_client] if client == "go" else [None] if client == "python" else [go_client, None]
    if client != "python" and go_client is None:
        console.print("[yellow]the Go subscriber is unavailable: running the Python subscribers only[/yellow]")
        clients = [None]
    names = [f"BENCH{k}USDT" for k in range(symbols)]
    with edge_channel() as channel:
        token = token_for(channel, "viewer")
    pids = _mesh_pids()
    md_stream = asyncio.run(_md_stream(infra_url("nats", "nats")))
    box0 = _box_cpu()
    time.sleep(2)
    box = [b - a for a, b in zip(box0, _box_cpu(), strict=True)]
    baseline_busy = round(100 * (sum(box) - box[3] - box[4]) / max(1, sum(box)), 1)
    ctx = mp.get_context("spawn")
    cells: list[Cell] = []
    started = datetime.now(UTC)
    for rate in (int(r) for r in rates.split(",") if r):
        for subs in (int(s) for s in subscribers.split(",") if s):
            for max_batch in (int(b) for b in batches.split(",") if b):
                batch = (max_batch, window_ms if max_batch > 1 else 0)
                label = f"batches of <= {max_batch}, {window_ms} ms" if max_batch > 1 else "unbatched"
                for go in clients:
                    who = "go client" if go is not None else "python clients"
                    console.print(f"[dim]cell: {rate} ticks/s in, {subs} subscribers, {label}, {who} ...[/dim]")
                    cells.append(
                        run_cell(
                            ctx,
                            token,
                            names,
                            rate,
                            subs,
                            procs,
                            duration,
                            pids,
                            publish,
                            kind,
                            batch,
                            source,
                            go,
                            gen_binary,
                            coalesce_ms,
                        )
                    )
    cores = os.cpu_count() or 0
    title = (
        (
            f"{kind} fan-out through the edge (Envoy+JWT+OPA), {publish} publish"
            if source == "mesh"
            else f"{kind} fan-out of marketdata alone (in-process feed, direct connections, no NATS/Envoy)"
        )
        + f" — {duration:g}s/cell, {symbols} symbols, "
        f"{cores} cores shared with the whole mesh ({baseline_busy:g}% busy before the run); "
        + {
            "go": f"generator: 1 Go process ({GO_CLIENT_BIN.relative_to(ROOT)} publish)",
            "python": "generator: 1 Python process",
            "in-process": "generator: in marketdata's process",
        }[gen_name]
        + "; subscribers: "
        + " / ".join(
            f"1 Go process ({GO_CLIENT_BIN.relative_to(ROOT)})" if go is not None else f"up to {procs} Python processes"
            for go in clients
        )
    )
    table = Table(title=title)
    columns = (
        "client",
        "in ticks/s",
        "batch (window)",
        "subs (procs)",
        "published/s",
        "ticks/msg",
        "JS ack p50/p99 ms",
        "delivered/s",
        "delivered %",
        "p50 ms",
        "p99 ms",
        "max ms",
        "hb dropped",
        "seq gaps",
        "hb conflated",
        "CPU% md/envoy/nats",
        "CPU% clients/gen",
        "CPU% questdb",
        "box busy %",
    )
    for column in columns:
        table.add_column(column, justify="right")
    for c in cells:
        cpu = c.cpu_pct
        table.add_row(
            c.client,
            str(c.input_rate),
            f"{c.max_batch} ({c.batch_window_ms} ms)" if c.max_batch > 1 else "-",
            f"{c.subscribers} ({c.subscriber_procs})",
            f"{c.publish_rate:.0f}",
            f"{c.published / c.md_messages:.1f}" if c.md_messages else "-",
            f"{c.pub_ack_p50_ms:.1f}/{c.pub_ack_p99_ms:.1f}",
            f"{c.delivered_per_s:.0f}",
            f"{c.delivered_pct:.1f}",
            f"{c.p50_ms:.2f}",
            f"{c.p99_ms:.2f}",
            f"{c.max_ms:.1f}",
            str(c.hb_dropped),
            str(c.seq_gaps),
            str(c.hb_conflated),
            f"{cpu.get('marketdata', 0):.0f}/{cpu.get('envoy', 0):.0f}/{cpu.get('nats', 0):.0f}",
            f"{cpu.get('bench_clients', 0):.0f}/{cpu.get('bench_generator', 0):.0f}",
            f"{cpu.get('questdb', 0):.0f}",
            f"{cpu.get('box_busy_of_all_cores', 0):.0f}",
        )
    console.print(table)
    for c in cells:
        if c.errors:
            console.print(f"[red]{c.client}: {c.input_rate}/s x {c.subscribers}: {c.errors}[/red]")
    RESULTS.mkdir(parents=True, exist_ok=True)
    parts = (kind if kind != "trade" else "", publish if publish != "js" and source == "mesh" else "", source)
    suffix = "".join(f"_{v}" for v in parts if v and v != "mesh")
    out = RESULTS / f"marketdata_fanout{suffix}.json"
    out.write_text(
        json.dumps(
            {
                "measured_at_utc": started.isoformat(timespec="seconds"),
                "finished_at_utc": datetime.now(UTC).isoformat(timespec="seconds"),
                "duration_s": duration,
                "batching": "max_batch 0 = unbatched (one update per stream message, as before); else StreamTrades/"
                "StreamQuotes with max_batch and batch_window_ms (batched delivery, one encode shared by all streams)",
                "publish": publish,
                "kind": kind,
                "symbols": names,
                "cores": cores,
                "source": source,
                "md_stream": md_stream if source == "mesh" else None,
                "box_busy_pct_before_run": baseline_busy,
                "machine": platform.machine(),
                "subscriber_procs_max": procs,
                "clients": ["go" if go is not None else "python" for go in clients],
                "generator": gen_name,
                "edge": EDGE,
                "coalesce_ms": coalesce_ms if source == "mesh" else None,
                "latency": "client receive wall clock - trade.event_time_ns (the wall clock at which the generator "
                "was due to send the tick; with coalesce_ms 0, when it sent it)",
                "md_messages": "MD messages (MarketDataBatch) the generator published; ticks/msg = published / it",
                "delivered_per_s": "trades received by all subscribers / (last receive - first publish)",
                "cpu_pct": "percent of one core over the cell (subscriber start to drain end), from /proc; "
                "bench_generator: the Go generator's whole process from /proc, the Python generator's own process "
                "time of its publish loop",
                "targets": {"delivered_per_s_100_subs_at_5k": 200_000, "p99_ms_at_5k": 20},
                "cells": [asdict(c) for c in cells],
            },
            indent=2,
        )
    )
    console.print(f"wrote {out}")


if __name__ == "__main__":
    typer.run(main)
