"""What the OMS needs from the outside world: the journal (JetStream ORDERS), the risk check and a clock."""

from __future__ import annotations

from typing import Protocol

from services.oms.domain.model import OrderChange, OrderSpec, RiskVerdict


class Journal(Protocol):
    async def append(self, change: OrderChange) -> OrderChange | None:
        """Append an event under its event id. Returns None when it was stored now, or the event already stored
        under that id (a duplicate: an earlier attempt got through). Raises DomainError UNAVAILABLE on failure."""
        ...


class RiskCheck(Protocol):
    async def check(
        self,
        account_id: str,
        symbol: str,
        spec: OrderSpec,
        client_order_id: str,
        amend_order_id: str,
        strategy_id: str,
    ) -> RiskVerdict:
        """Raises DomainError UNAVAILABLE / RISK_CHECK_UNAVAILABLE when no verdict arrived in time."""
        ...


class Clock(Protocol):
    def now_ns(self) -> int: ...
