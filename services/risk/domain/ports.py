"""What the risk domain needs from the outside world; unit tests inject fakes or the in-memory books."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Protocol

from services.risk.domain.model import ComplianceInput, KillSwitchEvent, LimitChange, OpenExposure, Violation


class Clock(Protocol):
    def now_ns(self) -> int: ...


class IdSource(Protocol):
    def new_id(self) -> str: ...


class MidSource(Protocol):
    """The last mid price of a symbol (None when unknown or stale)."""

    def mid(self, symbol: str, now_ns: int) -> Decimal | None: ...


class ExposureSource(Protocol):
    """An account's net position per symbol and its open (working) orders."""

    def position(self, account_id: str, symbol: str) -> Decimal: ...
    def open_exposure(self, account_id: str, symbol: str, amend_order_id: str) -> OpenExposure: ...


class PnlSource(Protocol):
    """An account's net PnL of the current trading day (None when no PnL is known)."""

    def day_net_pnl(self, account_id: str, now_ns: int) -> Decimal | None: ...


class CompliancePolicy(Protocol):
    """Evaluates compliance rules; raises ComplianceUnavailable when it cannot decide (the check fails closed)."""

    async def evaluate(self, request: ComplianceInput) -> Sequence[Violation]: ...


class ComplianceUnavailable(Exception):
    """The policy engine could not be reached or gave no usable answer."""


class RiskEvents(Protocol):
    """Durable publication of kill-switch events and limit-change audits (JetStream RISK)."""

    async def kill_switch(self, event: KillSwitchEvent) -> None: ...
    async def limit_change(self, change: LimitChange) -> None: ...
