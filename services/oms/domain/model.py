"""The OMS domain model: plain, immutable values (Decimal for every quantity, price and fee)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum

# Average prices are rounded to this many fraction digits (the wire allows at most 18).
AVG_PRICE_QUANTUM = Decimal("1e-15")


class Side(Enum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(Enum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP = "STOP"
    STOP_LIMIT = "STOP_LIMIT"


class TimeInForce(Enum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    GTD = "GTD"


class Status(Enum):
    PENDING_NEW = "PENDING_NEW"
    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    PENDING_CANCEL = "PENDING_CANCEL"
    CANCELED = "CANCELED"
    PENDING_REPLACE = "PENDING_REPLACE"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def done(self) -> bool:
        return self in DONE


DONE = frozenset({Status.FILLED, Status.CANCELED, Status.REJECTED, Status.EXPIRED})
WORKING = frozenset({Status.NEW, Status.PARTIALLY_FILLED})

# The transition table of trade.type.v1.OrderStatus, plus two FIX-style additions the OMS needs so that a cancel
# (a client's or the kill switch's) is never refused while the order may be live at the venue:
# PENDING_NEW -> PENDING_CANCEL and PENDING_REPLACE -> PENDING_CANCEL (and back on a cancel reject). Expiry and a
# venue reject are accepted wherever the venue can still produce them.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.PENDING_NEW: frozenset(
        {
            Status.NEW,
            Status.REJECTED,
            Status.CANCELED,
            Status.PARTIALLY_FILLED,
            Status.FILLED,
            Status.PENDING_CANCEL,
            Status.EXPIRED,
        }
    ),
    Status.NEW: frozenset(
        {
            Status.PARTIALLY_FILLED,
            Status.FILLED,
            Status.PENDING_CANCEL,
            Status.PENDING_REPLACE,
            Status.CANCELED,
            Status.EXPIRED,
        }
    ),
    Status.PENDING_CANCEL: frozenset(
        {
            Status.CANCELED,
            Status.PENDING_NEW,
            Status.NEW,
            Status.PARTIALLY_FILLED,
            Status.FILLED,
            Status.EXPIRED,
            Status.REJECTED,
            Status.PENDING_REPLACE,
        }
    ),
    Status.PENDING_REPLACE: frozenset(
        {
            Status.NEW,
            Status.PARTIALLY_FILLED,
            Status.FILLED,
            Status.CANCELED,
            Status.PENDING_CANCEL,
            Status.EXPIRED,
        }
    ),
    Status.FILLED: frozenset(),
    Status.CANCELED: frozenset(),
    Status.REJECTED: frozenset(),
    Status.EXPIRED: frozenset(),
}
TRANSITIONS[Status.PARTIALLY_FILLED] = TRANSITIONS[Status.NEW]


def legal(old: Status, new: Status) -> bool:
    """Staying in a status (a change of other fields) is legal for live orders only."""
    if old == new:
        return not old.done
    return new in TRANSITIONS[old]


@dataclass(frozen=True, slots=True)
class OrderSpec:
    side: Side
    order_type: OrderType
    quantity: Decimal
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    expire_time_ns: int = 0
    post_only: bool = False
    reduce_only: bool = False


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution; fill_id is the idempotency key. Enum-like fields are their wire names (e.g. "PRISM")."""

    fill_id: str
    price: Decimal
    quantity: Decimal
    fee: Decimal = Decimal(0)
    fee_currency: str = ""
    liquidity: str = "UNSPECIFIED"
    venue: str = ""
    venue_order_id: str = ""
    venue_trade_id: str = ""
    event_time_ns: int = 0
    receive_time_ns: int = 0
    # Copied from the order when the fill is applied.
    order_id: str = ""
    client_order_id: str = ""
    account_id: str = ""
    symbol: str = ""
    side: Side | None = None
    strategy_id: str = ""
    parent_order_id: str = ""


@dataclass(frozen=True, slots=True)
class Order:
    order_id: str
    client_order_id: str
    account_id: str
    symbol: str
    spec: OrderSpec
    status: Status
    venue: str
    create_time_ns: int
    update_time_ns: int
    version: int = 1
    cum_qty: Decimal = Decimal(0)
    leaves_qty: Decimal = Decimal(0)
    avg_price: Decimal | None = None
    cum_fee: Decimal = Decimal(0)
    fee_currency: str = ""
    venue_order_id: str = ""
    strategy_id: str = ""
    parent_order_id: str = ""
    reason: str = ""
    reason_message: str = ""
    # Not on the wire as Order fields; restored from the journal's events on replay.
    cum_notional: Decimal = Decimal(0)
    acknowledged: bool = False
    pending_spec: OrderSpec | None = None
    fill_ids: frozenset[str] = field(default_factory=frozenset)
    report_ids: frozenset[str] = field(default_factory=frozenset)

    @property
    def done(self) -> bool:
        return self.status.done

    @property
    def event_id(self) -> str:
        return f"{self.order_id}:{self.version}"


class EventKind(Enum):
    """What an OrderEvent records (the names of the OrderEvent.event oneof)."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    ACKNOWLEDGED = "acknowledged"
    CANCEL_REQUESTED = "cancel_requested"
    CANCELED = "canceled"
    CANCEL_REJECTED = "cancel_rejected"
    REPLACE_REQUESTED = "replace_requested"
    REPLACED = "replaced"
    REPLACE_REJECTED = "replace_rejected"
    EXPIRED = "expired"
    FILLED = "filled"


@dataclass(frozen=True, slots=True)
class EventDetail:
    """The payload of one event kind; only the fields of that kind are set."""

    risk_check_id: str = ""
    reason: str = ""
    message: str = ""
    venue_order_id: str = ""
    requested_by: str = ""
    quantity: Decimal | None = None  # canceled or expired quantity
    new_spec: OrderSpec | None = None
    previous_spec: OrderSpec | None = None
    fill: Fill | None = None


@dataclass(frozen=True, slots=True)
class OrderChange:
    """One journal entry: the order's full state after the change, what happened, and the venue report behind it."""

    order: Order
    kind: EventKind
    detail: EventDetail
    event_time_ns: int
    receive_time_ns: int
    report_id: str = ""

    @property
    def event_id(self) -> str:
        return self.order.event_id


class ExecType(Enum):
    NEW = "NEW"
    REJECTED = "REJECTED"
    TRADE = "TRADE"
    CANCELED = "CANCELED"
    CANCEL_REJECTED = "CANCEL_REJECTED"
    REPLACED = "REPLACED"
    REPLACE_REJECTED = "REPLACE_REJECTED"
    EXPIRED = "EXPIRED"
    TRIGGERED = "TRIGGERED"


@dataclass(frozen=True, slots=True)
class VenueReport:
    """An execution report from the live-gateway, reduced to what drives order state."""

    report_id: str
    order_id: str
    exec_type: ExecType
    venue_order_id: str = ""
    fill: Fill | None = None
    reason: str = ""
    text: str = ""
    event_time_ns: int = 0
    account_id: str = ""


@dataclass(frozen=True, slots=True)
class RiskVerdict:
    approved: bool
    check_id: str = ""
    reason: str = ""
    message: str = ""


@dataclass(frozen=True, slots=True)
class KillSwitch:
    """An engaged kill switch: account_id empty means every account."""

    event_id: str
    account_id: str
    reason: str
    actor: str
    event_time_ns: int
