"""What the engine emits, in order, into ``MatchingEngine.events``.

An event is a plain tuple whose first element is its kind (an int) and whose second is the symbol; tuples because
building one costs a fraction of building any object, and the engine emits two to four per order. The named
classes below have exactly the same field layout: ``decode(event)`` (or ``Trade._make(event)``) gives a typed,
attribute-access view for consumers (servicer, feed, tests) without slowing the engine down.

Prices and quantities are fixed-point ints, fees ints in fee units (see ``instruments.py`` and ``fees.py``).
A BOOK event is a per-symbol level delta: the new total quantity and order count at one price (0 removes the
level), with an update id that increases by exactly one per delta of that symbol.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final, NamedTuple

ACCEPTED: Final = 1
REJECTED: Final = 2
TRADE: Final = 3
CANCELED: Final = 4
EXPIRED: Final = 5
AMENDED: Final = 6
TRIGGERED: Final = 7
CANCEL_REJECTED: Final = 8
AMEND_REJECTED: Final = 9
BOOK: Final = 10

Event = tuple[Any, ...]
"""A raw event tuple (see the view classes for the layout of each kind)."""


class Accepted(NamedTuple):
    """The order passed validation and is working (resting, matching, or waiting for its stop price)."""

    kind: int
    symbol: str
    order_id: int
    owner: int
    side: int
    order_type: int
    time_in_force: int
    price: int
    qty: int
    stop_price: int


class Rejected(NamedTuple):
    """The order was refused; ``reason`` is an ErrorReason name, ``text`` a detail (may be empty)."""

    kind: int
    symbol: str
    order_id: int
    owner: int
    reason: str
    text: str


class Trade(NamedTuple):
    """One execution between a resting maker order and an incoming taker order (cum/leaves are after the fill)."""

    kind: int
    symbol: str
    trade_id: int
    price: int
    qty: int
    aggressor_side: int
    maker_order_id: int
    maker_owner: int
    maker_cum_qty: int
    maker_leaves_qty: int
    maker_fee: int
    taker_order_id: int
    taker_owner: int
    taker_cum_qty: int
    taker_leaves_qty: int
    taker_fee: int


class Canceled(NamedTuple):
    """The order's open quantity was canceled (on request, or by self-trade prevention)."""

    kind: int
    symbol: str
    order_id: int
    owner: int
    canceled_qty: int
    reason: str


class Expired(NamedTuple):
    """The order's open quantity was removed by its time in force (IOC/FOK/market remainder, GTD expiry)."""

    kind: int
    symbol: str
    order_id: int
    owner: int
    expired_qty: int
    reason: str


class Amended(NamedTuple):
    """The order now has this price and total quantity; ``kept_priority`` says if it kept its queue place."""

    kind: int
    symbol: str
    order_id: int
    owner: int
    price: int
    qty: int
    leaves_qty: int
    kept_priority: bool


class Triggered(NamedTuple):
    """A stop order's stop price was reached by the last trade price; it now works as a market or limit order."""

    kind: int
    symbol: str
    order_id: int
    owner: int
    stop_price: int
    last_price: int


class CancelRejected(NamedTuple):
    """A cancel was refused (ORDER_NOT_FOUND or TOO_LATE_TO_CANCEL); symbol is empty for an unknown order."""

    kind: int
    symbol: str
    order_id: int
    reason: str


class AmendRejected(NamedTuple):
    """An amend was refused; the order is unchanged."""

    kind: int
    symbol: str
    order_id: int
    reason: str


class BookDelta(NamedTuple):
    """A price level's new state; ``qty == 0`` removes the level. ``side`` is BUY for bids, SELL for asks."""

    kind: int
    symbol: str
    update_id: int
    side: int
    price: int
    qty: int
    order_count: int


EventView = (
    Accepted | Rejected | Trade | Canceled | Expired | Amended | Triggered | CancelRejected | AmendRejected | BookDelta
)

_VIEWS: dict[int, Callable[[Iterable[Any]], EventView]] = {
    ACCEPTED: Accepted._make,
    REJECTED: Rejected._make,
    TRADE: Trade._make,
    CANCELED: Canceled._make,
    EXPIRED: Expired._make,
    AMENDED: Amended._make,
    TRIGGERED: Triggered._make,
    CANCEL_REJECTED: CancelRejected._make,
    AMEND_REJECTED: AmendRejected._make,
    BOOK: BookDelta._make,
}


def decode(event: Event) -> EventView:
    """A typed view of a raw event tuple."""
    return _VIEWS[event[0]](event)
