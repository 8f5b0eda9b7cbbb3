"""Property tests of the PRISM matching engine: random command streams against an independent accounting model.

For any stream of submits (every order type and time in force, post-only, stops), cancels, amends and clock moves,
from a few owners (so self-trade prevention fires) around a few prices (so orders cross):

- no order is ever overfilled; each fill's reported cum qty equals the sum of that order's fill quantities and
  cum + leaves equals its quantity; nothing happens to an order after it is done;
- every trade has a buyer and a seller of different owners: bought quantity equals sold quantity;
- after every command the book is not crossed, every level's totals match its live orders, and the heap tops are
  live levels;
- replaying the book deltas rebuilds the book, with update ids 1, 2, 3, ...;
- the same commands give exactly the same events.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.prism.domain import BookReplica, FeeSchedule, Instrument, MatchingEngine
from services.prism.domain import events as ev
from services.prism.domain.events import Event
from services.prism.domain.orders import (
    BUY,
    FOK,
    GTC,
    GTD,
    IOC,
    LIMIT,
    MARKET,
    O_LEAVES,
    SELL,
    STOP,
    STOP_LIMIT,
)

TST = Instrument(symbol="TST", base="T", quote="USD", tick=1, lot=1, min_notional=0, price_decimals=2, qty_decimals=0)

Cmd = tuple[int, ...]
SUBMIT, CANCEL, AMEND, ADVANCE = 0, 1, 2, 3

prices = st.integers(96, 104)
owners = st.integers(1, 4)
sides = st.sampled_from([BUY, SELL])
qtys = st.integers(1, 6)

# (SUBMIT, owner, side, qty, stop price, order type, tif, limit price, post only)
limit_cmd = st.tuples(
    st.just(SUBMIT), owners, sides, qtys, st.just(0), st.just(LIMIT),
    st.sampled_from([GTC, GTC, GTC, IOC, FOK, GTD]), prices, st.booleans(),
)  # fmt: skip
market_cmd = st.tuples(
    st.just(SUBMIT), owners, sides, qtys, st.just(0), st.just(MARKET), st.sampled_from([IOC, FOK]), st.just(0),
    st.just(False),
)  # fmt: skip
stop_cmd = st.tuples(
    st.just(SUBMIT), owners, sides, qtys, st.sampled_from([0, 97, 100, 103]), st.sampled_from([STOP, STOP_LIMIT]),
    st.sampled_from([GTC, GTD, IOC]), prices, st.just(False),
)  # fmt: skip
# cancel / amend the k-th most recent order (k = 0 is a never-used id)
recent = st.integers(0, 8)
cancel_cmd = st.tuples(st.just(CANCEL), recent)
amend_cmd = st.tuples(st.just(AMEND), recent, st.sampled_from([0, 1, 2, 4, 8]), st.sampled_from([0, 0, 97, 100, 103]))
advance_cmd = st.tuples(st.just(ADVANCE), st.integers(1, 30))
commands = st.lists(
    st.one_of(limit_cmd, limit_cmd, limit_cmd, market_cmd, stop_cmd, cancel_cmd, cancel_cmd, amend_cmd, advance_cmd),
    min_size=20,
    max_size=100,
)


def apply(e: MatchingEngine, cmd: Cmd, submitted: int) -> None:
    if cmd[0] == SUBMIT:
        _, owner, side, qty, stop, otype, tif, price, post = cmd
        if otype == STOP:
            price = 0
        e.submit("TST", owner, side, qty, price, otype, tif, stop, e.now + 15 if tif == GTD else 0, bool(post))
    elif cmd[0] == CANCEL:
        e.cancel(max(0, submitted + 1 - cmd[1]))
    elif cmd[0] == AMEND:
        e.amend(max(0, submitted + 1 - cmd[1]), new_qty=cmd[2], new_price=cmd[3])
    else:
        e.advance(e.now + cmd[1])


@dataclass
class Tracked:
    side: int
    qty: int
    filled: int = 0
    done: bool = False


class Ledger:
    """Independent accounting of orders and fills from the event stream alone."""

    def __init__(self) -> None:
        self.orders: dict[int, Tracked] = {}

    def live(self) -> int:
        return sum(1 for o in self.orders.values() if not o.done)

    def feed(self, events: list[Event]) -> None:
        for x in events:
            kind = x[0]
            if kind == ev.ACCEPTED:
                _, _, oid, _, side, _, _, _, qty, _ = x
                assert oid not in self.orders
                self.orders[oid] = Tracked(side, qty)
            elif kind == ev.REJECTED:
                assert x[2] not in self.orders
            elif kind == ev.TRADE:
                (
                    _,
                    _,
                    _,
                    price,
                    qty,
                    aggressor,
                    m_id,
                    m_owner,
                    m_cum,
                    m_leaves,
                    _,
                    t_id,
                    t_owner,
                    t_cum,
                    t_leaves,
                    _,
                ) = x
                assert qty > 0 and price > 0
                assert m_owner != t_owner, "self-trade"
                maker, taker = self.orders[m_id], self.orders[t_id]
                assert not maker.done and not taker.done
                assert maker.side != taker.side and taker.side == aggressor
                for o, cum, leaves in ((maker, m_cum, m_leaves), (taker, t_cum, t_leaves)):
                    o.filled += qty
                    assert o.filled == cum, "cum qty is the sum of fill quantities"
                    assert o.filled <= o.qty, "overfill"
                    assert cum + leaves == o.qty
                    if not leaves:
                        o.done = True
            elif kind in (ev.CANCELED, ev.EXPIRED):
                o = self.orders[x[2]]
                assert not o.done
                assert x[4] == o.qty - o.filled > 0
                o.done = True
            elif kind == ev.AMENDED:
                _, _, oid, _, _, qty, leaves, _ = x
                o = self.orders[oid]
                assert not o.done and qty > o.filled
                o.qty = qty
                assert leaves == qty - o.filled
            elif kind == ev.TRIGGERED:
                assert not self.orders[x[2]].done


def check_book(e: MatchingEngine) -> None:
    book = e.book("TST")
    best_bid, best_ask = book.best_bid(), book.best_ask()
    assert not (best_bid and best_ask and best_bid >= best_ask), "crossed book"
    for levels in (book.bids, book.asks):
        for lvl in levels.values():
            live = [o for o in lvl.orders if o[O_LEAVES]]
            assert lvl.qty == sum(o[O_LEAVES] for o in live)
            assert lvl.n == len(live)
    if book.bid_heap:
        assert book.bids[-book.bid_heap[0]].n
    if book.ask_heap:
        assert book.asks[book.ask_heap[0]].n


def run(cmds: list[Cmd]) -> list[Event]:
    e = MatchingEngine(instruments=[TST], fees=FeeSchedule(maker_ppm=-50, taker_ppm=300))
    ledger = Ledger()
    replica = BookReplica("TST")
    out: list[Event] = []
    submitted = 0
    for cmd in cmds:
        apply(e, cmd, submitted)
        submitted += cmd[0] == SUBMIT
        batch = e.drain()
        ledger.feed(batch)
        for x in batch:
            assert replica.apply(x), "gap in book update ids"
        check_book(e)
        assert e.open_orders == ledger.live()
        out += batch
    bought = sum(o.filled for o in ledger.orders.values() if o.side == BUY)
    sold = sum(o.filled for o in ledger.orders.values() if o.side == SELL)
    assert bought == sold
    assert replica.snapshot() == e.snapshot("TST")
    ids = [x[2] for x in out if x[0] == ev.BOOK]
    assert ids == list(range(1, len(ids) + 1))
    return out


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(commands)
def test_random_command_streams_keep_every_invariant_and_are_deterministic(cmds: list[Cmd]) -> None:
    assert run(cmds) == run(cmds)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(limit_cmd, market_cmd, cancel_cmd), min_size=150, max_size=300))
def test_long_streams_of_limits_markets_and_cancels_keep_every_invariant(cmds: list[Cmd]) -> None:
    run(cmds)
