"""A per-symbol price-level book, enough to derive level 1 and to emit snapshots."""

from __future__ import annotations

from decimal import Decimal

from services.normalizer.domain.model import Level


class LevelBook:
    """Aggregated levels per side keyed by price; quantity 0 removes a level."""

    def __init__(self) -> None:
        self.bids: dict[Decimal, Level] = {}
        self.asks: dict[Decimal, Level] = {}

    def replace(self, bids: tuple[Level, ...], asks: tuple[Level, ...]) -> None:
        self.bids = {lvl.price: lvl for lvl in bids if lvl.quantity > 0}
        self.asks = {lvl.price: lvl for lvl in asks if lvl.quantity > 0}

    def apply(self, bids: tuple[Level, ...], asks: tuple[Level, ...]) -> None:
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for lvl in levels:
                if lvl.quantity == 0:
                    side.pop(lvl.price, None)
                else:
                    side[lvl.price] = lvl

    def best_bid(self) -> Level | None:
        return self.bids[max(self.bids)] if self.bids else None

    def best_ask(self) -> Level | None:
        return self.asks[min(self.asks)] if self.asks else None

    def levels(self) -> tuple[tuple[Level, ...], tuple[Level, ...]]:
        """(bids best first, asks best first)."""
        bids = tuple(self.bids[p] for p in sorted(self.bids, reverse=True))
        asks = tuple(self.asks[p] for p in sorted(self.asks))
        return bids, asks

    def same_as(self, bids: tuple[Level, ...], asks: tuple[Level, ...]) -> bool:
        return self.bids == {lvl.price: lvl for lvl in bids if lvl.quantity > 0} and self.asks == {
            lvl.price: lvl for lvl in asks if lvl.quantity > 0
        }
