"""PRISM's synthetic participants: a seeded, deterministic market that user orders can trade against."""

from __future__ import annotations

from services.prism.domain import BookReplica, MatchingEngine, decode
from services.prism.domain import events as ev
from services.prism.domain.events import Event, Trade
from services.prism.domain.orders import BUY, IOC, MARKET
from services.prism.domain.participants import ParticipantKind, Simulation, SimulationConfig


def simulate(seed: int, steps: int) -> tuple[MatchingEngine, list[Event]]:
    engine = MatchingEngine()
    sim = Simulation(engine, SimulationConfig(seed=seed))
    out: list[Event] = []
    for _ in range(steps):
        sim.step()
        out += engine.drain()
        for symbol in engine.symbols:
            book = engine.book(symbol)
            assert not (book.best_bid() and book.best_ask() and book.best_bid() >= book.best_ask())
    return engine, out


def test_same_seed_gives_the_same_market_and_another_seed_another() -> None:
    _, a = simulate(7, 1_500)
    _, b = simulate(7, 1_500)
    _, c = simulate(8, 1_500)
    assert a == b
    assert a != c


def test_participants_make_a_two_sided_market_with_trades_on_every_instrument() -> None:
    engine, out = simulate(3, 3_000)
    for symbol in engine.symbols:
        top = engine.top_of_book(symbol)
        assert top.bid_price and top.ask_price and top.bid_price < top.ask_price
        assert any(x[0] == ev.TRADE and x[1] == symbol for x in out)
        replica = BookReplica(symbol)
        assert all(replica.apply(x) for x in out)
        assert replica.snapshot() == engine.snapshot(symbol)


def test_a_user_market_order_trades_against_synthetic_liquidity() -> None:
    engine = MatchingEngine()
    Simulation(engine, SimulationConfig(seed=5)).run(2_000)
    engine.drain()
    btc = engine.book("BTCUSDT").instrument
    oid = engine.submit("BTCUSDT", 42, BUY, btc.qty("0.01"), order_type=MARKET, tif=IOC)
    fills = [v for v in map(decode, engine.drain()) if isinstance(v, Trade) and v.taker_order_id == oid]
    assert sum(f.qty for f in fills) == btc.qty("0.01")
    assert all(f.maker_owner >= SimulationConfig().first_owner for f in fills)


def test_disabled_kinds_do_not_trade() -> None:
    engine = MatchingEngine()
    sim = Simulation(engine, SimulationConfig(seed=2))
    for kind in ParticipantKind:
        sim.enabled[kind] = kind == ParticipantKind.MARKET_MAKER
    sim.run(1_000)
    out = engine.drain()
    assert not any(x[0] == ev.TRADE for x in out)  # market makers alone only quote (post only)
    assert any(x[0] == ev.BOOK for x in out)
