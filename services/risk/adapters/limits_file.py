"""The limits TOML: account defaults, instruments and compliance data."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from services.risk.domain.model import AccountLimits, ComplianceConfig, InstrumentLimits, TradingWindow


@dataclass(frozen=True)
class LimitsConfig:
    account_defaults: AccountLimits
    instruments: tuple[InstrumentLimits, ...]
    compliance: ComplianceConfig


def _dec(table: dict[str, Any], key: str) -> Decimal | None:
    value = table.get(key)
    return None if value is None else Decimal(str(value))


def parse_limits(doc: dict[str, Any]) -> LimitsConfig:
    acct = doc.get("account_defaults", {})
    defaults = AccountLimits(
        account_id="",
        max_order_notional=_dec(acct, "max_order_notional"),
        max_open_orders=int(acct.get("max_open_orders", 0)),
        max_orders_per_second=int(acct.get("max_orders_per_second", 0)),
        daily_loss_limit=_dec(acct, "daily_loss_limit"),
        is_default=True,
    )
    instruments = tuple(
        InstrumentLimits(
            symbol=str(item["symbol"]),
            trading_enabled=bool(item.get("trading_enabled", True)),
            price_band_bps=int(item.get("price_band_bps", 0)),
            max_order_quantity=_dec(item, "max_order_quantity"),
            max_order_notional=_dec(item, "max_order_notional"),
            max_position_quantity=_dec(item, "max_position_quantity"),
        )
        for item in doc.get("instruments", [])
    )
    comp = doc.get("compliance", {})
    windows = {
        str(symbol): TradingWindow(
            start_minute=int(w.get("start_minute", 0)),
            end_minute=int(w.get("end_minute", 1440)),
            weekdays=tuple(int(d) for d in w.get("weekdays", (1, 2, 3, 4, 5, 6, 7))),
        )
        for symbol, w in comp.get("trading_windows", {}).items()
    }
    compliance = ComplianceConfig(
        restricted_symbols={str(k): str(v) for k, v in comp.get("restricted_symbols", {}).items()},
        account_restricted_symbols={
            str(k): tuple(str(s) for s in v) for k, v in comp.get("account_restrictions", {}).items()
        },
        trading_windows=windows,
    )
    return LimitsConfig(defaults, instruments, compliance)


def load_limits(path: Path) -> LimitsConfig:
    with path.open("rb") as f:
        return parse_limits(tomllib.load(f))
