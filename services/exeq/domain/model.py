"""Parent (algorithmic) orders and their child orders. Quantities and prices are exact Decimals, never floats.

Enum values are the proto value names without their prefix (ParentStatus.WORKING <-> PARENT_ORDER_STATUS_WORKING),
order statuses and reasons are plain strings in the same style ("FILLED", "RISK_MAX_NOTIONAL").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum

ZERO = Decimal(0)

# OMS order statuses after which a child order no longer works.
DONE_ORDER_STATUSES = frozenset({"FILLED", "CANCELED", "REJECTED", "EXPIRED"})


class Algo(Enum):
    IMMEDIATE = "IMMEDIATE"
    TWAP = "TWAP"
    VWAP = "VWAP"
    POV = "POV"


class ParentStatus(Enum):
    PENDING = "PENDING"
    WORKING = "WORKING"
    COMPLETED = "COMPLETED"
    CANCELING = "CANCELING"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    FAILED = "FAILED"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset(
    {ParentStatus.COMPLETED, ParentStatus.CANCELED, ParentStatus.REJECTED, ParentStatus.EXPIRED, ParentStatus.FAILED}
)


class EventType(Enum):
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    CHILD_SENT = "CHILD_SENT"
    CHILD_FILLED = "CHILD_FILLED"
    CHILD_DONE = "CHILD_DONE"
    STATUS_CHANGED = "STATUS_CHANGED"


@dataclass(frozen=True)
class Instrument:
    """What exeq needs of an instrument: the lot size children are rounded to and the default venue."""

    symbol: str
    lot_size: Decimal
    venue: str = "PRISM"


@dataclass(frozen=True)
class AlgoParams:
    start_time_ns: int = 0
    duration_ns: int = 0
    slice_count: int = 0
    participation_rate: Decimal | None = None
    venue_preference: tuple[str, ...] = ()
    max_child_quantity: Decimal | None = None
    passive: bool = False


@dataclass(frozen=True)
class SubmitParent:
    """A validated-on-entry SubmitParentOrder command."""

    account_id: str
    symbol: str
    client_order_id: str
    side: str  # "BUY" | "SELL" | "" (unspecified)
    quantity: Decimal | None
    limit_price: Decimal | None
    algo: Algo | None
    params: AlgoParams
    strategy_id: str = ""


@dataclass
class ChildOrder:
    """One child order as exeq knows it. Registered before it is sent, so its OMS events always find it."""

    n: int
    client_order_id: str
    quantity: Decimal
    order_type: str  # "MARKET" | "LIMIT"
    time_in_force: str  # "IOC" | "GTC"
    limit_price: Decimal | None
    venue: str
    order_id: str = ""
    status: str = "PENDING_NEW"
    cum_qty: Decimal = ZERO
    notional: Decimal = ZERO
    version: int = 0
    reason: str = ""
    reason_message: str = ""
    create_time_ns: int = 0
    update_time_ns: int = 0
    fill_ids: set[str] = field(default_factory=set)

    @property
    def done(self) -> bool:
        return self.status in DONE_ORDER_STATUSES

    @property
    def committed(self) -> Decimal:
        """Quantity this child can still fill or has filled: its quantity while open, its fills once done."""
        return self.cum_qty if self.done else self.quantity

    @property
    def avg_price(self) -> Decimal | None:
        return self.notional / self.cum_qty if self.cum_qty else None


@dataclass
class ParentOrder:
    parent_order_id: str
    client_order_id: str
    account_id: str
    symbol: str
    side: str
    quantity: Decimal
    limit_price: Decimal | None
    algo: Algo
    params: AlgoParams
    strategy_id: str
    status: ParentStatus
    create_time_ns: int
    update_time_ns: int
    cum_qty: Decimal = ZERO
    notional: Decimal = ZERO
    child_order_count: int = 0
    scheduled_qty: Decimal = ZERO
    reason: str = ""
    reason_message: str = ""
    version: int = 0
    # Not part of the published state: rebuilt from the OMS after a restart.
    children: list[ChildOrder] = field(default_factory=list)
    # Set once no further child will be sent by the schedule (end time reached / single shot sent).
    schedule_done: bool = False
    # POV: market volume counted so far (a restart seeds it from the committed quantity).
    observed_volume: Decimal = ZERO

    @property
    def leaves_qty(self) -> Decimal:
        return ZERO if self.status.terminal else self.quantity - self.cum_qty

    @property
    def avg_price(self) -> Decimal | None:
        return self.notional / self.cum_qty if self.cum_qty else None

    @property
    def committed_qty(self) -> Decimal:
        return sum((c.committed for c in self.children), ZERO)

    @property
    def open_children(self) -> list[ChildOrder]:
        return [c for c in self.children if not c.done]

    def child(self, client_order_id: str = "", order_id: str = "") -> ChildOrder | None:
        for c in self.children:
            if (client_order_id and c.client_order_id == client_order_id) or (order_id and c.order_id == order_id):
                return c
        return None

    def end_time_ns(self) -> int:
        """When the schedule ends (0: no end, e.g. POV without duration or IMMEDIATE)."""
        if self.params.duration_ns <= 0 or self.algo == Algo.IMMEDIATE:
            return 0
        return self.start_time_ns() + self.params.duration_ns

    def start_time_ns(self) -> int:
        return self.params.start_time_ns or self.create_time_ns


@dataclass(frozen=True)
class ParentEvent:
    """One change of a parent order. `parent` is a snapshot (its published fields do not change afterwards)."""

    event_id: str
    event_time_ns: int
    parent: ParentOrder
    type: EventType
    child_order_id: str = ""


@dataclass(frozen=True)
class ChildUpdate:
    """An OMS order event about a child order (from JetStream ORDERS)."""

    parent_order_id: str
    order_id: str
    client_order_id: str
    version: int
    status: str
    fill_id: str = ""
    fill_qty: Decimal = ZERO
    fill_price: Decimal = ZERO
    reason: str = ""
    reason_message: str = ""
    event_time_ns: int = 0
    # The child as the event shows it (after this change), for a child this process does not know yet.
    snapshot: ChildOrder | None = None


@dataclass(frozen=True)
class ChildAck:
    """The OMS's answer to a child SubmitOrder."""

    order_id: str
    status: str
    version: int = 1
    reason: str = ""
    reason_message: str = ""
    create_time_ns: int = 0
