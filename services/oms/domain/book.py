"""The OMS's in-memory view of every order and fill (rebuilt from the journal), with its queries."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from services.oms.domain.model import Fill, Order, OrderSpec, Side, Status


@dataclass(frozen=True, slots=True)
class Submission:
    """What the first SubmitOrder asked for: a retry must ask for the same."""

    symbol: str
    spec: OrderSpec
    venue: str
    strategy_id: str
    parent_order_id: str


class OrderBook:
    def __init__(self) -> None:
        self._orders: dict[str, Order] = {}
        self._by_client: dict[tuple[str, str], str] = {}
        self._by_account: dict[str, dict[str, None]] = {}
        self._open: dict[str, dict[str, None]] = {}
        self._fills: dict[str, list[Fill]] = {}
        self.submissions: dict[str, Submission] = {}

    def __len__(self) -> int:
        return len(self._orders)

    def get(self, order_id: str) -> Order | None:
        return self._orders.get(order_id)

    def by_client_order_id(self, account_id: str, client_order_id: str) -> Order | None:
        order_id = self._by_client.get((account_id, client_order_id))
        return self._orders.get(order_id) if order_id else None

    def put(self, order: Order, fill: Fill | None) -> bool:
        """Store a newer version of an order; False (nothing stored) when this version is not newer."""
        current = self._orders.get(order.order_id)
        if current is not None and order.version <= current.version:
            return False
        if current is None:
            self._by_client[(order.account_id, order.client_order_id)] = order.order_id
            self._by_account.setdefault(order.account_id, {})[order.order_id] = None
            self.submissions[order.order_id] = Submission(
                order.symbol, order.spec, order.venue, order.strategy_id, order.parent_order_id
            )
        self._orders[order.order_id] = order
        open_orders = self._open.setdefault(order.account_id, {})
        if order.done:
            open_orders.pop(order.order_id, None)
        else:
            open_orders[order.order_id] = None
        if fill is not None:
            self._fills.setdefault(order.account_id, []).append(fill)
        return True

    def contents(self) -> tuple[list[tuple[Order, Submission]], dict[str, list[Fill]]]:
        """Every order (in the order first seen) with its submission, and every account's fills: for a snapshot."""
        orders = [(order, self.submissions[order_id]) for order_id, order in self._orders.items()]
        return orders, {account: list(fills) for account, fills in self._fills.items()}

    def load(self, orders: Iterable[tuple[Order, Submission]], fills: Mapping[str, Sequence[Fill]]) -> None:
        """Fill an empty book with a snapshot's contents."""
        if self._orders:
            raise ValueError("a snapshot loads into an empty book only")
        for order, submission in orders:
            self.put(order, None)
            self.submissions[order.order_id] = submission
        self._fills = {account: list(account_fills) for account, account_fills in fills.items()}

    def accounts(self) -> Iterable[str]:
        return list(self._by_account)

    def orders_of(self, account_id: str) -> list[Order]:
        return [self._orders[i] for i in self._by_account.get(account_id, {})]

    def open_orders(self, account_id: str, symbol: str = "", side: Side | None = None) -> list[Order]:
        """Open orders, oldest first."""
        orders = [self._orders[i] for i in self._open.get(account_id, {})]
        orders = [o for o in orders if (not symbol or o.symbol == symbol) and (side is None or o.spec.side == side)]
        return sorted(orders, key=lambda o: (o.create_time_ns, o.order_id))

    def fills_of(self, account_id: str) -> list[Fill]:
        return list(self._fills.get(account_id, ()))


def matches(order: Order, symbol: str, statuses: frozenset[Status], open_only: bool, parent_order_id: str) -> bool:
    return (
        (not symbol or order.symbol == symbol)
        and (not statuses or order.status in statuses)
        and (not open_only or not order.done)
        and (not parent_order_id or order.parent_order_id == parent_order_id)
    )
