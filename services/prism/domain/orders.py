"""Order vocabulary: sides, order types, time in force, reason codes, and the order record layout.

The enum values are the numbers of the protobuf enums in ``trade/type/v1/order.proto`` (``Side``, ``OrderType``,
``TimeInForce``), so the servicer converts with ``int()`` and back without a table. They are ``IntEnum``s: the
engine's API takes plain ints and ``Side.BUY`` is one.

Reason codes are the names of ``trade.type.v1.ErrorReason`` without the ``ERROR_REASON_`` prefix wherever the proto
has one (the servicer sends ``ErrorReason.Value("ERROR_REASON_" + reason)``); the expiry and cancel reasons that have
no ErrorReason (IOC_REMAINDER, FOK_NOT_FILLABLE, GTD_EXPIRED, SELF_TRADE_PREVENTION, ...) go to the execution's text.

A working order is a ``list[int]`` indexed by the ``O_*`` constants below, not an object: a list is created about
four times faster than a ``__slots__`` instance, and per-order overhead is what limits a Python matching engine.
Use ``MatchingEngine.order(id)`` for a typed, read-only ``OrderView``.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final, NamedTuple


class Side(IntEnum):
    """Order side (trade.type.v1.Side)."""

    BUY = 1
    SELL = 2


class OrderType(IntEnum):
    """Order type (trade.type.v1.OrderType)."""

    MARKET = 1
    LIMIT = 2
    STOP = 3
    STOP_LIMIT = 4


class TimeInForce(IntEnum):
    """Time in force (trade.type.v1.TimeInForce); UNSPECIFIED means GTC for priced orders and IOC for market."""

    UNSPECIFIED = 0
    GTC = 1
    IOC = 2
    FOK = 3
    GTD = 4


class OrderState(IntEnum):
    """Where a live order is inside the engine."""

    ACTIVE = 0  # being matched (a taker, not stored)
    RESTING = 1  # in the book
    STOP_PENDING = 2  # waiting for its stop price


# plain-int aliases for the hot path (an IntEnum member compares slower than an int)
BUY: Final = 1
SELL: Final = 2
MARKET: Final = 1
LIMIT: Final = 2
STOP: Final = 3
STOP_LIMIT: Final = 4
TIF_UNSPECIFIED: Final = 0
GTC: Final = 1
IOC: Final = 2
FOK: Final = 3
GTD: Final = 4
RESTING: Final = 1
STOP_PENDING: Final = 2

# --- reason codes ------------------------------------------------------------------------------------------------
# rejects (REJECTED, CANCEL_REJECTED, AMEND_REJECTED): trade.type.v1.ErrorReason names
UNKNOWN_SYMBOL: Final = "UNKNOWN_SYMBOL"
VALIDATION_FAILED: Final = "VALIDATION_FAILED"
INVALID_TICK_SIZE: Final = "INVALID_TICK_SIZE"
INVALID_LOT_SIZE: Final = "INVALID_LOT_SIZE"
BELOW_MIN_NOTIONAL: Final = "BELOW_MIN_NOTIONAL"
POST_ONLY_WOULD_TAKE: Final = "POST_ONLY_WOULD_TAKE"
EXPIRE_TIME_IN_PAST: Final = "EXPIRE_TIME_IN_PAST"
ORDER_NOT_FOUND: Final = "ORDER_NOT_FOUND"
TOO_LATE_TO_CANCEL: Final = "TOO_LATE_TO_CANCEL"
TOO_LATE_TO_AMEND: Final = "TOO_LATE_TO_AMEND"
NO_LIQUIDITY: Final = "NO_LIQUIDITY"
# why an order ended without a reject (EXPIRED / CANCELED text)
IOC_REMAINDER: Final = "IOC_REMAINDER"
FOK_NOT_FILLABLE: Final = "FOK_NOT_FILLABLE"
GTD_EXPIRED: Final = "GTD_EXPIRED"
CANCEL_REQUESTED: Final = "CANCEL_REQUESTED"
SELF_TRADE_PREVENTION: Final = "SELF_TRADE_PREVENTION"

# --- the order record: list[int] -----------------------------------------------------------------------------------
O_ID: Final = 0  # engine order id (> 0, engine-wide sequence)
O_OWNER: Final = 1  # owner id: self-trade prevention group (one per member account / synthetic agent)
O_SIDE: Final = 2
O_PRICE: Final = 3  # limit price (0 for MARKET and STOP)
O_QTY: Final = 4  # total quantity (after amends)
O_LEAVES: Final = 5  # open quantity; 0 once done (a dead entry in a price level's queue has 0 here)
O_TYPE: Final = 6
O_TIF: Final = 7
O_EXPIRE: Final = 8  # GTD expiry, ns (0 otherwise)
O_STOP: Final = 9  # stop price (0 unless STOP / STOP_LIMIT)
O_POST: Final = 10  # 1 = post only
O_STATE: Final = 11  # OrderState
O_BOOK: Final = 12  # index of the order's book in the engine
O_MAKER_PPM: Final = 13  # fee rates resolved at entry
O_TAKER_PPM: Final = 14

Order = list[int]
"""A working order (see the O_* indices)."""


class OrderView(NamedTuple):
    """A read-only, typed copy of a live order."""

    order_id: int
    owner: int
    symbol: str
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce
    price: int
    qty: int
    leaves_qty: int
    cum_qty: int
    stop_price: int
    expire_time_ns: int
    post_only: bool
    state: OrderState
