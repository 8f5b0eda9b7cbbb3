"""The venue-neutral model: orders sent to venues, executions coming back, reports and fills published."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal


class Venue(enum.Enum):
    """A venue; the value is its NATS subject token (VENUE_BINANCE_SPOT -> "binance_spot")."""

    PRISM = "prism"
    PAPER = "paper"
    BINANCE_SPOT = "binance_spot"


class Side(enum.Enum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(enum.Enum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP = "STOP"
    STOP_LIMIT = "STOP_LIMIT"


class TimeInForce(enum.Enum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    GTD = "GTD"


class OrderStatus(enum.Enum):
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
        return self in _DONE


_DONE = frozenset({OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED})


class ExecType(enum.Enum):
    NEW = "NEW"
    REJECTED = "REJECTED"
    TRADE = "TRADE"
    CANCELED = "CANCELED"
    CANCEL_REJECTED = "CANCEL_REJECTED"
    REPLACED = "REPLACED"
    REPLACE_REJECTED = "REPLACE_REJECTED"
    EXPIRED = "EXPIRED"
    TRIGGERED = "TRIGGERED"


class Liquidity(enum.Enum):
    UNSPECIFIED = "UNSPECIFIED"
    MAKER = "MAKER"
    TAKER = "TAKER"


class ConnectionState(enum.Enum):
    UNSPECIFIED = "UNSPECIFIED"
    CONNECTED = "CONNECTED"
    CONNECTING = "CONNECTING"
    DISCONNECTED = "DISCONNECTED"
    DEGRADED = "DEGRADED"


@dataclass(frozen=True)
class OrderSpec:
    """What to order (trade.type.v1.OrderSpec); time_in_force is already resolved (GTC / IOC default)."""

    side: Side
    order_type: OrderType
    quantity: Decimal
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    expire_time_ns: int = 0
    post_only: bool = False
    reduce_only: bool = False


@dataclass(frozen=True)
class PlaceOrder:
    account_id: str
    symbol: str
    venue: Venue
    order_id: str  # OMS order id: the idempotency key and the client order id sent to the venue
    client_order_id: str
    spec: OrderSpec


@dataclass(frozen=True)
class CancelOrder:
    account_id: str
    symbol: str
    venue: Venue
    order_id: str
    venue_order_id: str = ""


@dataclass(frozen=True)
class AmendOrder:
    account_id: str
    symbol: str
    venue: Venue
    order_id: str
    venue_order_id: str
    new_spec: OrderSpec
    order_version: int


@dataclass(frozen=True)
class VenueExecution:
    """One venue event about one order, as an adapter normalizes it.

    exec_id is the venue's own id of the event (unique per venue and account), so the same venue event always
    yields the same report and fill ids. venue_sequence is the venue's resume point (prism's exec_sequence), 0 when
    the venue has none.
    """

    venue: Venue
    account_id: str
    symbol: str
    order_id: str
    venue_order_id: str
    exec_id: str
    exec_type: ExecType
    order_status: OrderStatus | None  # None: unknown (a cancel refused for an order the venue does not know)
    side: Side | None = None
    quantity: Decimal | None = None
    limit_price: Decimal | None = None
    last_price: Decimal | None = None
    last_quantity: Decimal | None = None
    cum_qty: Decimal | None = None
    leaves_qty: Decimal | None = None
    avg_price: Decimal | None = None
    fee: Decimal | None = None
    fee_currency: str = ""
    liquidity: Liquidity = Liquidity.UNSPECIFIED
    trade_id: str = ""
    reason: str = ""  # trade.type.v1.ErrorReason name without the ERROR_REASON_ prefix
    text: str = ""
    venue_sequence: int = 0
    event_time_ns: int = 0
    receive_time_ns: int = 0


@dataclass(frozen=True)
class Fill:
    fill_id: str
    order_id: str
    client_order_id: str
    account_id: str
    symbol: str
    side: Side | None
    price: Decimal
    quantity: Decimal
    fee: Decimal
    fee_currency: str
    liquidity: Liquidity
    venue: Venue
    venue_order_id: str
    venue_trade_id: str
    event_time_ns: int
    receive_time_ns: int


@dataclass(frozen=True)
class ExecutionReport:
    """An execution normalized for the mesh (trade.live_gateway.v1.ExecutionReport)."""

    report_id: str
    execution: VenueExecution
    client_order_id: str
    quantity: Decimal | None
    limit_price: Decimal | None
    avg_price: Decimal | None
    fill: Fill | None = None


@dataclass(frozen=True)
class PlaceResult:
    """A venue's immediate answer to a placement; executions it carries are also published as reports."""

    venue_order_id: str
    status: OrderStatus
    executions: tuple[VenueExecution, ...] = ()
    replayed: bool = False


@dataclass(frozen=True)
class CancelResult:
    accepted: bool
    executions: tuple[VenueExecution, ...] = ()


@dataclass(frozen=True)
class AmendResult:
    accepted: bool
    venue_order_id: str = ""
    executions: tuple[VenueExecution, ...] = ()


@dataclass(frozen=True)
class VenueCapabilities:
    display_name: str
    simulated: bool
    order_types: tuple[OrderType, ...]
    time_in_force: tuple[TimeInForce, ...]
    native_amend: bool


@dataclass(frozen=True)
class ConnectionStatus:
    """What an adapter knows about its connection."""

    state: ConnectionState
    message: str = ""
    state_change_time_ns: int = 0
    last_heartbeat_time_ns: int = 0
    rate_limit_remaining: int = -1


@dataclass(frozen=True)
class VenueStatus:
    venue: Venue
    connection: ConnectionStatus
    round_trip_p50_ns: int
    open_order_count: int
    orders_placed: int
    orders_rejected: int
    traded_notional_today: Decimal


@dataclass(frozen=True)
class VenueInfo:
    venue: Venue
    capabilities: VenueCapabilities
    state: ConnectionState


class VenueRejected(Exception):
    """The venue refused a request (its answer was definite: nothing happened there)."""

    def __init__(self, reason: str, text: str, venue_code: str = "") -> None:
        super().__init__(f"{reason}: {text}")
        self.reason = reason
        self.text = text
        self.venue_code = venue_code


class VenueUnavailable(Exception):
    """The venue could not be reached or did not answer; the request's outcome is unknown."""


class VenueRateLimited(Exception):
    """The venue's own rate limit refused the request."""


class NotSupported(Exception):
    """The venue cannot do this (an order type, a native amend ...)."""


@dataclass
class StatusHolder:
    """Connection state bookkeeping shared by the adapters."""

    state: ConnectionState = ConnectionState.CONNECTING
    message: str = ""
    state_change_time_ns: int = 0
    last_heartbeat_time_ns: int = 0
    rate_limit_remaining: int = -1

    def set(self, state: ConnectionState, message: str, now_ns: int) -> None:
        if state != self.state:
            self.state = state
            self.state_change_time_ns = now_ns
        self.message = message

    def alive(self, now_ns: int) -> None:
        self.last_heartbeat_time_ns = now_ns

    def snapshot(self) -> ConnectionStatus:
        return ConnectionStatus(
            self.state, self.message, self.state_change_time_ns, self.last_heartbeat_time_ns, self.rate_limit_remaining
        )
