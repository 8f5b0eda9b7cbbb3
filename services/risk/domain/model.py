"""Risk domain values: orders to check, limits, violations, kill switches and audit records (plain Python)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum


class Side(Enum):
    BUY = "buy"
    SELL = "sell"


class OrderType(Enum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"


class Reason:
    """Machine-readable violation reasons (trade.type.v1.ErrorReason names without ERROR_REASON_)."""

    INSTRUMENT_DISABLED = "RISK_INSTRUMENT_DISABLED"
    PRICE_BAND = "RISK_PRICE_BAND"
    MAX_ORDER_QTY = "RISK_MAX_ORDER_QTY"
    MAX_NOTIONAL = "RISK_MAX_NOTIONAL"
    MAX_POSITION = "RISK_MAX_POSITION"
    MAX_OPEN_ORDERS = "RISK_MAX_OPEN_ORDERS"
    ORDER_RATE = "RISK_ORDER_RATE"
    DAILY_LOSS = "RISK_DAILY_LOSS"
    KILL_SWITCH = "RISK_KILL_SWITCH"
    RESTRICTED_SYMBOL = "RISK_COMPLIANCE_RESTRICTED_SYMBOL"
    TRADING_WINDOW = "RISK_COMPLIANCE_TRADING_WINDOW"
    CHECK_UNAVAILABLE = "RISK_CHECK_UNAVAILABLE"
    NO_REFERENCE_PRICE = "RISK_NO_REFERENCE_PRICE"


@dataclass(frozen=True)
class OrderCheck:
    """An order (new, or the amended spec of an existing one) to check."""

    account_id: str
    symbol: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    client_order_id: str = ""
    amend_order_id: str = ""
    strategy_id: str = ""


@dataclass(frozen=True)
class Violation:
    reason: str
    message: str
    limit: Decimal | None = None
    observed: Decimal | None = None


@dataclass(frozen=True)
class CheckResult:
    check_id: str
    check_time_ns: int
    violations: tuple[Violation, ...]
    reference_price: Decimal | None

    @property
    def approved(self) -> bool:
        return not self.violations

    @property
    def reasons(self) -> list[str]:
        return [v.reason for v in self.violations]


@dataclass(frozen=True)
class InstrumentLimits:
    symbol: str
    trading_enabled: bool = True
    price_band_bps: int = 0
    max_order_quantity: Decimal | None = None
    max_order_notional: Decimal | None = None
    max_position_quantity: Decimal | None = None


@dataclass(frozen=True)
class PositionLimit:
    symbol: str
    max_position_quantity: Decimal


@dataclass(frozen=True)
class AccountLimits:
    """An account's limits; None (or 0 for counts) means no limit of that kind."""

    account_id: str
    max_order_notional: Decimal | None = None
    max_open_orders: int = 0
    max_orders_per_second: int = 0
    daily_loss_limit: Decimal | None = None
    position_limits: tuple[PositionLimit, ...] = ()
    is_default: bool = False
    version: int = 0
    update_time_ns: int = 0
    updated_by: str = ""

    def position_limit(self, symbol: str) -> Decimal | None:
        for limit in self.position_limits:
            if limit.symbol == symbol:
                return limit.max_position_quantity
        return None


@dataclass(frozen=True)
class LimitChange:
    """One audited change of limits: exactly one of account_id / symbol is set, and the matching values."""

    audit_id: str
    actor: str
    change_time_ns: int
    reason: str
    account_id: str = ""
    symbol: str = ""
    old_account: AccountLimits | None = None
    new_account: AccountLimits | None = None
    old_instrument: InstrumentLimits | None = None
    new_instrument: InstrumentLimits | None = None


class KillSwitchScope(Enum):
    GLOBAL = "global"
    ACCOUNT = "account"


@dataclass(frozen=True)
class KillSwitch:
    scope: KillSwitchScope
    account_id: str = ""
    engaged: bool = False
    changed_by: str = ""
    reason: str = ""
    change_time_ns: int = 0


@dataclass(frozen=True)
class KillSwitchEvent:
    event_id: str
    engaged: bool
    scope: KillSwitchScope
    account_id: str
    actor: str
    reason: str
    event_time_ns: int

    @property
    def subject_suffix(self) -> str:
        return "global" if self.scope is KillSwitchScope.GLOBAL else f"account.{self.account_id}"


@dataclass(frozen=True)
class OpenOrder:
    order_id: str
    account_id: str
    symbol: str
    side: Side
    leaves_qty: Decimal
    filled_qty: Decimal = Decimal(0)


@dataclass(frozen=True)
class OpenExposure:
    """An account's open orders as the checks read them: kept up to date per order event, so a check costs the
    same with five open orders or fifty thousand."""

    count: int = 0  # open orders of the account, every symbol
    buy_leaves: Decimal = Decimal(0)  # open buy quantity in the checked symbol
    sell_leaves: Decimal = Decimal(0)
    replaced: OpenOrder | None = None  # the open order an amend replaces (counted in the leaves above)

    @classmethod
    def of(cls, orders: Sequence[OpenOrder], symbol: str, amend_order_id: str = "") -> OpenExposure:
        """The same figures computed from a list of open orders."""
        buys = sum((o.leaves_qty for o in orders if o.symbol == symbol and o.side is Side.BUY), Decimal(0))
        sells = sum((o.leaves_qty for o in orders if o.symbol == symbol and o.side is Side.SELL), Decimal(0))
        replaced = next((o for o in orders if amend_order_id and o.order_id == amend_order_id), None)
        if replaced is not None and replaced.symbol != symbol:
            replaced = None
        return cls(len(orders), buys, sells, replaced)


@dataclass(frozen=True)
class ComplianceInput:
    """The input document of the compliance policy."""

    account_id: str
    symbol: str
    side: Side
    strategy_id: str
    time_ns: int

    def document(self) -> dict[str, object]:
        return {
            "account": self.account_id,
            "symbol": self.symbol,
            "side": self.side.value,
            "strategy": self.strategy_id,
            "time_ns": self.time_ns,
        }


@dataclass(frozen=True)
class ComplianceConfig:
    """Compliance data pushed into OPA: restrictions and trading windows (UTC minutes of the day)."""

    restricted_symbols: dict[str, str] = field(default_factory=dict)
    account_restricted_symbols: dict[str, tuple[str, ...]] = field(default_factory=dict)
    trading_windows: dict[str, TradingWindow] = field(default_factory=dict)


@dataclass(frozen=True)
class TradingWindow:
    """Trading allowed on these ISO weekdays (1 = Monday) from start_minute (incl.) to end_minute (excl.), UTC."""

    start_minute: int = 0
    end_minute: int = 1440
    weekdays: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7)
