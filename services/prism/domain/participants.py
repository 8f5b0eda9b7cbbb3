"""Synthetic market participants: seeded agents whose orders make PRISM's market (the feed's flow).

Each instrument has a fair value in ticks that follows a seeded random walk. Agents act one at a time through
``Simulation.step()``, always through the same engine commands a member uses (``submit``/``amend``/``cancel``):

- market makers quote a few levels on both sides around the fair value (post only, never through the other
  side), skewed against what their last quotes filled, and requote when the fair value moves or a quote fills;
- noise traders send small marketable orders and passive limits near the touch, and cancel old ones;
- momentum traders buy after a rise of the last price and sell after a fall;
- mean-reversion traders trade towards the fair value when the last price strays from it;
- large traders rarely send a big market order that sweeps several levels.

Everything random comes from one ``random.Random(seed)``; with the same seed, configuration and interleaving of
user commands a run is identical. The simulation reads the engine (book, last price, its own orders) but never its
event list: that belongs to whoever drains it (the servicer, which publishes the feed).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import IntEnum

from services.prism.domain.engine import MatchingEngine
from services.prism.domain.orders import BUY, IOC, LIMIT, SELL


class ParticipantKind(IntEnum):
    """Kinds of synthetic participants (values of trade.prism.v1.ParticipantKind)."""

    MARKET_MAKER = 1
    NOISE_TRADER = 2
    MOMENTUM_TRADER = 3
    MEAN_REVERSION_TRADER = 4
    LARGE_TRADER = 5


DEFAULT_FAIR_VALUES: dict[str, str] = {"BTCUSDT": "60000", "ETHUSDT": "3000", "SOLUSDT": "150"}
"""Starting fair values (quote units) of the default instruments."""


@dataclass(frozen=True)
class SimulationConfig:
    """What the synthetic market looks like. Counts are per instrument; sizes are notionals in quote units."""

    seed: int = 1
    fair_values: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_FAIR_VALUES))
    counts: dict[ParticipantKind, int] = field(
        default_factory=lambda: {
            ParticipantKind.MARKET_MAKER: 3,
            ParticipantKind.NOISE_TRADER: 4,
            ParticipantKind.MOMENTUM_TRADER: 1,
            ParticipantKind.MEAN_REVERSION_TRADER: 1,
            ParticipantKind.LARGE_TRADER: 1,
        }
    )
    volatility_bp: float = 1.0  # standard deviation of a fair value step, basis points
    quote_notional: int = 2_000
    trade_notional: int = 300
    large_notional: int = 25_000
    half_spread_ticks: int = 2
    quote_levels: int = 3  # price levels a market maker quotes on each side
    sweep_limit_bp: int = 100  # how far through the reference price a participant's marketable order may trade
    first_owner: int = 1_000_000  # owner ids of the agents start here (members' owners must stay below)


@dataclass
class Agent:
    """One synthetic participant on one instrument."""

    kind: ParticipantKind
    owner: int
    symbol: str
    orders: list[int] = field(default_factory=list)  # its recent order ids (a market maker's: its quotes)
    quoted_at: int = 0  # fair value (ticks) of a market maker's current quotes


class Simulation:
    """Drives the agents; ``step()`` lets one agent act, ``run(n)`` does n steps."""

    def __init__(self, engine: MatchingEngine, config: SimulationConfig | None = None) -> None:
        self.engine = engine
        self.config = config or SimulationConfig()
        self.rng = random.Random(self.config.seed)
        self.enabled: dict[ParticipantKind, bool] = dict.fromkeys(ParticipantKind, True)
        self.fair: dict[str, int] = {}  # fair value in ticks
        self.history: dict[str, list[int]] = {}  # recent last prices
        self.agents: list[Agent] = []
        owner = self.config.first_owner
        for symbol in engine.symbols:
            book = engine.book(symbol)
            start = self.config.fair_values.get(symbol)
            if start is None:
                continue
            self.fair[symbol] = book.instrument.price(start) // book.tick
            self.history[symbol] = []
            for kind in ParticipantKind:
                for _ in range(self.config.counts.get(kind, 0)):
                    self.agents.append(Agent(kind, owner, symbol))
                    owner += 1
        self.steps = 0

    def run(self, steps: int) -> None:
        """Do ``steps`` steps."""
        for _ in range(steps):
            self.step()

    def step(self) -> None:
        """Move one fair value, then let one randomly chosen (enabled) agent act."""
        if not self.agents:
            return
        self.steps += 1
        rng = self.rng
        agent = self.agents[rng.randrange(len(self.agents))]
        symbol = agent.symbol
        fair = self.fair[symbol]
        fair = max(1, fair + round(rng.gauss(0.0, fair * self.config.volatility_bp / 10_000)))
        self.fair[symbol] = fair
        history = self.history[symbol]
        last = self.engine.book(symbol).last
        if last:
            history.append(last)
            del history[:-20]
        if not self.enabled[agent.kind]:
            return
        act = {
            ParticipantKind.MARKET_MAKER: self._market_maker,
            ParticipantKind.NOISE_TRADER: self._noise,
            ParticipantKind.MOMENTUM_TRADER: self._momentum,
            ParticipantKind.MEAN_REVERSION_TRADER: self._mean_reversion,
            ParticipantKind.LARGE_TRADER: self._large,
        }[agent.kind]
        act(agent, fair)

    # --- helpers -----------------------------------------------------------------------------------------------------

    def _qty(self, symbol: str, price: int, notional: int) -> int:
        """A quantity (multiple of the lot) worth about ``notional`` quote units at ``price``, never below the
        minimum notional."""
        inst = self.engine.book(symbol).instrument
        target = notional * int(10**inst.notional_decimals)
        lots = max(1, target // (price * inst.lot), -(-inst.min_notional // (price * inst.lot)))
        return lots * inst.lot

    def _market(self, agent: Agent, side: int, notional: int) -> None:
        book = self.engine.book(agent.symbol)
        ref = book.last or (book.best_ask() if side == BUY else book.best_bid())
        if not ref:
            return
        # Price protection, as real venues have: a marketable IOC limit at most ``sweep_limit_bp`` through the
        # reference, so one participant's order never sweeps a thin book to the far-away resting orders.
        tick = book.instrument.tick
        reach = ref * self.config.sweep_limit_bp // 10_000
        limit = ref + reach if side == BUY else max(tick, ref - reach)
        limit -= limit % tick
        self.engine.submit(agent.symbol, agent.owner, side, self._qty(agent.symbol, ref, notional), limit, LIMIT, IOC)

    # --- behaviours --------------------------------------------------------------------------------------------------

    def _market_maker(self, agent: Agent, fair: int) -> None:
        engine = self.engine
        if agent.orders and agent.quoted_at == fair and all(engine.order(o) is not None for o in agent.orders):
            return  # quotes are current and untouched
        inventory = 0
        for oid in agent.orders:
            view = engine.order(oid)
            if view is not None:
                inventory += view.cum_qty if view.side == BUY else -view.cum_qty
                engine.cancel(oid)
        agent.orders.clear()
        book = engine.book(agent.symbol)
        tick = book.tick
        skew = self.rng.randint(-1, 1) - (inventory > 0) + (inventory < 0)
        half = self.config.half_spread_ticks + self.rng.randint(0, 1)
        best_bid, best_ask = book.best_bid(), book.best_ask()
        for level in range(self.config.quote_levels):
            bid = (fair - half - 2 * level + skew) * tick
            ask = (fair + half + 2 * level + skew) * tick
            if best_ask:
                bid = min(bid, best_ask - tick)
            if best_bid:
                ask = max(ask, best_bid + tick)
            for side, price in ((BUY, bid), (SELL, ask)):
                if price > 0:
                    qty = self._qty(agent.symbol, price, self.config.quote_notional)
                    agent.orders.append(engine.submit(agent.symbol, agent.owner, side, qty, price, post_only=True))
        agent.quoted_at = fair

    def _noise(self, agent: Agent, fair: int) -> None:
        rng = self.rng
        engine = self.engine
        book = engine.book(agent.symbol)
        side = BUY if rng.random() < 0.5 else SELL
        roll = rng.random()
        if roll < 0.3:
            self._market(agent, side, self.config.trade_notional)
        elif roll < 0.8:
            offset = int(rng.expovariate(0.4))
            price = (fair - 1 - offset if side == BUY else fair + 1 + offset) * book.tick
            qty = self._qty(agent.symbol, price, self.config.trade_notional)
            agent.orders.append(engine.submit(agent.symbol, agent.owner, side, qty, price))
        elif agent.orders:
            engine.cancel(agent.orders.pop(rng.randrange(len(agent.orders))))
        del agent.orders[:-20]

    def _momentum(self, agent: Agent, fair: int) -> None:
        history = self.history[agent.symbol]
        if len(history) >= 10 and history[-1] != history[-10]:
            self._market(agent, BUY if history[-1] > history[-10] else SELL, self.config.trade_notional * 3)

    def _mean_reversion(self, agent: Agent, fair: int) -> None:
        book = self.engine.book(agent.symbol)
        if book.last:
            gap = book.last // book.tick - fair
            if abs(gap) > 2 * self.config.half_spread_ticks:
                self._market(agent, SELL if gap > 0 else BUY, self.config.trade_notional * 2)

    def _large(self, agent: Agent, fair: int) -> None:
        if self.rng.random() < 0.05:
            self._market(agent, BUY if self.rng.random() < 0.5 else SELL, self.config.large_notional)
