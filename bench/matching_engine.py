"""Matching engine throughput and per-operation latency: PRISM next to a bare reference book, same input, same run.

One seeded mixed workload (new limit orders near a drifting mid, cancels of live orders, marketable orders) is
generated once and run through:

- ``prism``: ``services.prism.domain.MatchingEngine`` — every feature on (validation, fees, self-trade prevention,
  stop/GTD bookkeeping, execution events and book deltas with update ids);
- ``reference``: the bare dict + deque + heap book below (limit, market and cancel only, fills appended to a list,
  nothing else) — the ceiling of plain Python data structures;
- ``pyorderbook`` (when installed): an existing pure-Python order book library from PyPI, through a thin adapter.

Each engine gets a fresh book per pass: throughput is the best of ``--repeat`` untimed-per-op passes; latency comes
from one more pass that times every operation with ``perf_counter_ns`` (so it includes the ~0.1 µs of the timer).
Prints a table and writes JSON to bench/results/matching_engine.json.

    .venv/bin/python -m bench.matching_engine [--ops 300000] [--seed 7] [--repeat 3]
"""

from __future__ import annotations

import gc
import json
import platform
import random
import statistics
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from heapq import heappop, heappush
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from services.prism.domain import MatchingEngine
from services.prism.domain.instruments import Instrument
from services.prism.domain.orders import IOC, LIMIT, MARKET

RESULTS = Path(__file__).resolve().parent / "results"
OP_LIMIT, OP_CANCEL, OP_MARKET = 0, 1, 2
BUY, SELL = 1, 2
INSTRUMENT = Instrument.from_decimals("BTCUSDT", "BTC", "USDT", "0.01", "0.00001", "5")
SYMBOL = INSTRUMENT.symbol
TICK = INSTRUMENT.tick
LOT = INSTRUMENT.lot

Op = tuple[int, int, int, int, int]
"""(kind, side, price, qty, ref): ref is the order id a cancel targets, else the id the new order will get."""


# --- the reference book ---------------------------------------------------------------------------------------------


class ReferenceBook:
    """A bare price-time book: dict price -> deque of [id, qty] per side, heaps of prices, lazy deletion.

    No validation, no events, no fees, no self-trade prevention: fills are appended to ``fills`` as
    (price, qty, maker id, taker id). Order ids are assigned 1, 2, 3, ... like PRISM's.
    """

    __slots__ = ("ask_heap", "asks", "bid_heap", "bids", "fills", "next_id", "orders")

    def __init__(self) -> None:
        self.bids: dict[int, deque[list[int]]] = {}
        self.asks: dict[int, deque[list[int]]] = {}
        self.bid_heap: list[int] = []
        self.ask_heap: list[int] = []
        self.orders: dict[int, list[int]] = {}
        self.fills: list[tuple[int, int, int, int]] = []
        self.next_id = 1

    def limit(self, side: int, price: int, qty: int) -> int:
        oid = self.next_id
        self.next_id = oid + 1
        qty = self._take(side, price, qty, oid)
        if qty:
            o = [oid, qty]
            if side == BUY:
                q = self.bids.get(price)
                if q is None:
                    q = self.bids[price] = deque()
                    heappush(self.bid_heap, -price)
            else:
                q = self.asks.get(price)
                if q is None:
                    q = self.asks[price] = deque()
                    heappush(self.ask_heap, price)
            q.append(o)
            self.orders[oid] = o
        return oid

    def market(self, side: int, qty: int) -> int:
        oid = self.next_id
        self.next_id = oid + 1
        self._take(side, (1 << 62) if side == BUY else 0, qty, oid)
        return oid

    def cancel(self, oid: int) -> bool:
        o = self.orders.pop(oid, None)
        if o is None:
            return False
        o[1] = 0
        return True

    def live(self, oid: int) -> bool:
        return oid in self.orders

    def _take(self, side: int, limit: int, qty: int, oid: int) -> int:
        fills = self.fills
        orders = self.orders
        if side == BUY:
            heap, levels, sign = self.ask_heap, self.asks, 1
        else:
            heap, levels, sign = self.bid_heap, self.bids, -1
        while qty and heap:
            p = heap[0] * sign
            q = levels[p]
            while q and not q[0][1]:
                q.popleft()
            if not q:
                heappop(heap)
                del levels[p]
                continue
            if (side == BUY and p > limit) or (side == SELL and p < limit):
                break
            while q and qty:
                mo = q[0]
                mq = mo[1]
                if not mq:
                    q.popleft()
                    continue
                f = mq if mq < qty else qty
                qty -= f
                mo[1] = mq - f
                fills.append((p, f, mo[0], oid))
                if mq == f:
                    q.popleft()
                    del orders[mo[0]]
        return qty


# --- the workload ---------------------------------------------------------------------------------------------------


def make_workload(n_ops: int, seed: int) -> list[Op]:
    """60 % new limits within a few ticks of a drifting mid, 25 % cancels of live orders, 15 % market orders.

    Cancels target orders that are live at that point (tracked by running the reference book alongside), so nearly
    all of them cancel something. Every order has its own owner id, so self-trade prevention never changes the
    outcome and every engine must print the same trades.
    """
    rng = random.Random(seed)
    ref = ReferenceBook()
    live: list[int] = []
    ops: list[Op] = []
    mid = 6_000_000  # 60000.00 in ticks
    next_id = 1
    for _ in range(n_ops):
        mid += rng.choice((-1, 0, 0, 0, 0, 0, 0, 1))
        r = rng.random()
        if r < 0.25:
            target = 0
            while live and not target:
                i = rng.randrange(len(live))
                candidate = live[i]
                live[i] = live[-1]
                live.pop()
                if ref.live(candidate):
                    target = candidate
            if target:
                ops.append((OP_CANCEL, 0, 0, 0, target))
                ref.cancel(target)
                continue
            r = 0.5  # nothing live to cancel: a new limit instead
        side = BUY if rng.random() < 0.5 else SELL
        if r < 0.85:
            offset = min(int(rng.expovariate(0.15)), 60)
            price = (mid - 1 - offset if side == BUY else mid + 1 + offset) * TICK
            qty = rng.randint(10, 100) * LOT
            ops.append((OP_LIMIT, side, price, qty, next_id))
            ref.limit(side, price, qty)
            live.append(next_id)
        else:
            qty = rng.randint(10, 300) * LOT
            ops.append((OP_MARKET, side, 0, qty, next_id))
            ref.market(side, qty)
        next_id += 1
    return ops


# --- drivers --------------------------------------------------------------------------------------------------------

Driver = Callable[[list[Op], list[int] | None], int]
"""Runs the ops on a fresh book (timing each op into the list when given); returns the number of fills."""


def drive_prism(ops: list[Op], lat: list[int] | None) -> int:
    eng = MatchingEngine(instruments=[INSTRUMENT])
    submit, cancel, events = eng.submit, eng.cancel, eng.events
    sym = SYMBOL
    clock = time.perf_counter_ns
    for i, (kind, side, price, qty, ref) in enumerate(ops):
        if lat is not None:
            t0 = clock()
        if kind == OP_LIMIT:
            submit(sym, ref, side, qty, price)
        elif kind == OP_CANCEL:
            cancel(ref)
        else:
            submit(sym, ref, side, qty, 0, MARKET, IOC)
        if lat is not None:
            lat.append(clock() - t0)
        if not i & 1023:  # ship events out, like the servicer would
            events.clear()
    return eng.book(sym).trade_id


def drive_reference(ops: list[Op], lat: list[int] | None) -> int:
    book = ReferenceBook()
    limit, market, cancel, out = book.limit, book.market, book.cancel, book.fills
    fills = 0
    clock = time.perf_counter_ns
    for i, (kind, side, price, qty, _ref) in enumerate(ops):
        if lat is not None:
            t0 = clock()
        if kind == OP_LIMIT:
            limit(side, price, qty)
        elif kind == OP_CANCEL:
            cancel(_ref)
        else:
            market(side, qty)
        if lat is not None:
            lat.append(clock() - t0)
        if not i & 1023:
            fills += len(out)
            out.clear()
    return fills + len(out)


def _library_driver() -> tuple[str, Driver] | None:
    """pyorderbook (PyPI), if installed: Decimal prices, object orders, its own matching loop."""
    try:
        from decimal import Decimal

        import pyorderbook  # type: ignore[import-not-found]
    except ImportError:
        return None

    lib: Any = pyorderbook

    def drive(ops: list[Op], lat: list[int] | None) -> int:
        book = lib.Book()
        sym = SYMBOL
        ids: dict[int, Any] = {}
        fills = 0
        clock = time.perf_counter_ns
        scale = Decimal(10) ** -8
        buy, sell = lib.Side.BUY, lib.Side.SELL
        for kind, side, price, qty, ref in ops:
            if lat is not None:
                t0 = clock()
            if kind == OP_CANCEL:
                order = ids.pop(ref, None)
                if order is not None and order.fill_status.name != "FILLED":
                    try:
                        book.cancel(order)
                    except Exception:  # already filled: the library raises
                        pass
            else:
                px = Decimal(price) * scale if kind == OP_LIMIT else (Decimal(10**9) if side == BUY else Decimal(0))
                req = lib.Order(px, int(qty // LOT), sym, buy if side == BUY else sell)
                blotter = book.match(req)
                fills += len(blotter.trades)
                if kind == OP_LIMIT:
                    ids[ref] = req
                elif req.fill_status.name != "FILLED":
                    try:
                        book.cancel(req)  # a market order's remainder does not rest
                    except Exception:
                        pass
            if lat is not None:
                lat.append(clock() - t0)
        return fills

    return "pyorderbook", drive


# --- measurement ----------------------------------------------------------------------------------------------------


@dataclass
class Result:
    engine: str
    ops: int
    ops_per_s: float
    mean_us: float
    p50_us: float
    p99_us: float
    fills: int


def measure(name: str, drive: Driver, ops: list[Op], repeat: int) -> Result:
    best = float("inf")
    fills = 0
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter_ns()
        fills = drive(ops, None)
        best = min(best, time.perf_counter_ns() - t0)
    lat: list[int] = []
    gc.collect()
    drive(ops, lat)
    lat.sort()
    return Result(
        engine=name,
        ops=len(ops),
        ops_per_s=len(ops) / (best / 1e9),
        mean_us=statistics.fmean(lat) / 1000,
        p50_us=lat[len(lat) // 2] / 1000,
        p99_us=lat[int(len(lat) * 0.99)] / 1000,
        fills=fills,
    )


def main(
    ops: int = typer.Option(300_000, help="operations in the workload"),
    seed: int = typer.Option(7, help="workload seed"),
    repeat: int = typer.Option(3, help="throughput passes per engine (best counts)"),
    library: bool = typer.Option(True, help="include the PyPI library when installed"),
) -> None:
    console = Console()
    workload = make_workload(ops, seed)
    mix = {k: sum(1 for o in workload if o[0] == v) / len(workload) for k, v in
           (("limit", OP_LIMIT), ("cancel", OP_CANCEL), ("market", OP_MARKET))}  # fmt: skip
    drivers: list[tuple[str, Driver]] = [("prism", drive_prism), ("reference (dict+deque+heap)", drive_reference)]
    lib = _library_driver() if library else None
    if lib is not None:
        drivers.append(lib)
    results = [measure(name, drive, workload, repeat) for name, drive in drivers]
    ref = results[1]
    table = Table(title=f"matching engine, {len(workload):,} ops (seed {seed}; mix " +
                  ", ".join(f"{k} {v:.0%}" for k, v in mix.items()) + ")")  # fmt: skip
    for col in ("engine", "ops/s", "mean µs", "p50 µs", "p99 µs", "fills", "vs reference"):
        table.add_column(col, justify="left" if col == "engine" else "right")
    for r in results:
        table.add_row(r.engine, f"{r.ops_per_s:,.0f}", f"{r.mean_us:.2f}", f"{r.p50_us:.2f}", f"{r.p99_us:.2f}",
                      f"{r.fills:,}", f"{r.ops_per_s / ref.ops_per_s:.2f}x")  # fmt: skip
    console.print(table)
    if lib is None and library:
        console.print("pyorderbook is not installed: no library column (pip install pyorderbook)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {
        "benchmark": "matching_engine",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "workload": {"ops": len(workload), "seed": seed, "mix": mix, "repeat": repeat},
        "results": [asdict(r) for r in results],
    }
    (RESULTS / "matching_engine.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    typer.run(main)
