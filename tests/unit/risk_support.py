"""Fakes and builders shared by the risk unit tests."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from services.risk.domain.killswitch import KillSwitchBook
from services.risk.domain.limits import LimitsBook
from services.risk.domain.model import (
    AccountLimits,
    ComplianceInput,
    InstrumentLimits,
    KillSwitchEvent,
    LimitChange,
    OrderCheck,
    OrderType,
    Side,
    Violation,
)
from services.risk.domain.ports import ComplianceUnavailable
from services.risk.domain.service import RiskService
from services.risk.domain.state import ExposureBook, MidBook, PnlBook

T0 = 1_764_000_000_000_000_000  # 2025-11-24T16:00:00Z
D = Decimal


class FakeClock:
    def __init__(self, now_ns: int = T0) -> None:
        self.now = now_ns

    def now_ns(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1e9)


class SeqIds:
    def __init__(self) -> None:
        self.n = 0

    def new_id(self) -> str:
        self.n += 1
        return f"id-{self.n:06d}"


class FakeCompliance:
    def __init__(self) -> None:
        self.violations: list[Violation] = []
        self.down = False
        self.calls: list[ComplianceInput] = []

    async def evaluate(self, request: ComplianceInput) -> Sequence[Violation]:
        self.calls.append(request)
        if self.down:
            raise ComplianceUnavailable("connection refused")
        return list(self.violations)


class RecordingEvents:
    def __init__(self) -> None:
        self.kill_switches: list[KillSwitchEvent] = []
        self.limit_changes: list[LimitChange] = []
        self.fail = False

    async def kill_switch(self, event: KillSwitchEvent) -> None:
        if self.fail:
            raise RuntimeError("nats down")
        self.kill_switches.append(event)

    async def limit_change(self, change: LimitChange) -> None:
        if self.fail:
            raise RuntimeError("nats down")
        self.limit_changes.append(change)


BTC = InstrumentLimits(
    symbol="BTCUSDT",
    trading_enabled=True,
    price_band_bps=500,
    max_order_quantity=D("10"),
    max_order_notional=D("500000"),
    max_position_quantity=D("20"),
)
DISABLED = InstrumentLimits(symbol="OFFUSDT", trading_enabled=False)
DEFAULTS = AccountLimits(
    account_id="",
    max_order_notional=D("1000000"),
    max_open_orders=5,
    max_orders_per_second=3,
    daily_loss_limit=D("1000"),
    is_default=True,
)


class World:
    """A RiskService over in-memory state, with every port reachable for arrangement."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.mids = MidBook(max_age_ns=60 * 10**9)
        self.exposure = ExposureBook()
        self.pnl = PnlBook()
        self.compliance = FakeCompliance()
        self.events = RecordingEvents()
        self.limits = LimitsBook(DEFAULTS, [BTC, DISABLED])
        self.kill_switches = KillSwitchBook()
        self.service = RiskService(
            self.limits,
            self.kill_switches,
            self.mids,
            self.exposure,
            self.pnl,
            self.compliance,
            self.events,
            self.clock,
            SeqIds(),
        )
        self.mids.update("BTCUSDT", D("50000"), self.clock.now)


def limit(
    qty: str = "1",
    price: str = "50000",
    side: Side = Side.BUY,
    account: str = "acct-1",
    symbol: str = "BTCUSDT",
    amend: str = "",
) -> OrderCheck:
    return OrderCheck(account, symbol, side, OrderType.LIMIT, D(qty), limit_price=D(price), amend_order_id=amend)


def market(qty: str = "1", side: Side = Side.BUY, account: str = "acct-1", symbol: str = "BTCUSDT") -> OrderCheck:
    return OrderCheck(account, symbol, side, OrderType.MARKET, D(qty))
