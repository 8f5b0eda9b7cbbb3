"""Request validation: identifiers, decimals and order specs. Every bad field becomes one field violation."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from services.oms.domain.model import OrderSpec, OrderType, Side, TimeInForce
from services.runtime.errors import Validator

ACCOUNT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
CLIENT_ORDER_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
SYMBOL = re.compile(r"[A-Za-z0-9_-]{1,64}")
DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")
MAX_FRACTION_DIGITS = 18
MAX_SIGNIFICANT_DIGITS = 38


def parse_decimal(v: Validator, field: str, text: str | None, *, positive: bool = True) -> Decimal | None:
    """None when absent (text is None); records a violation and returns None when malformed."""
    if text is None:
        return None
    if not DECIMAL.fullmatch(text):
        v.require(False, field, f"{text!r} is not a decimal like 101.25")
        return None
    fraction = text.split(".", 1)[1] if "." in text else ""
    digits = text.lstrip("-").replace(".", "").lstrip("0")
    if len(fraction) > MAX_FRACTION_DIGITS or len(digits) > MAX_SIGNIFICANT_DIGITS:
        v.require(False, field, "at most 18 fraction digits and 38 significant digits")
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the regex admits only valid literals
        v.require(False, field, f"{text!r} is not a decimal")
        return None
    if positive and value <= 0:
        v.require(False, field, "must be greater than 0")
        return None
    return value


def format_decimal(value: Decimal) -> str:
    """The normalized wire form: no exponent, no trailing fraction zeros, never -0."""
    if value == 0:
        return "0"
    text = format(value.normalize(), "f")
    return text


def check_account(v: Validator, account_id: str, field: str = "account_id") -> None:
    v.require(bool(ACCOUNT_ID.fullmatch(account_id)), field, "1-64 characters from [A-Za-z0-9_-]")


def check_client_order_id(v: Validator, client_order_id: str, field: str = "client_order_id") -> None:
    v.require(bool(CLIENT_ORDER_ID.fullmatch(client_order_id)), field, "1-64 characters from [A-Za-z0-9._:-]")


def check_symbol(v: Validator, symbol: str, field: str = "symbol") -> None:
    v.require(bool(SYMBOL.fullmatch(symbol)), field, "1-64 characters from [A-Za-z0-9_-]")


@dataclass(frozen=True)
class RawSpec:
    """An OrderSpec as it arrived: enums already mapped (None = unspecified), decimals still text (None = absent)."""

    side: Side | None
    order_type: OrderType | None
    quantity: str | None
    limit_price: str | None
    stop_price: str | None
    time_in_force: TimeInForce | None
    expire_time_ns: int
    post_only: bool
    reduce_only: bool


def parse_spec(v: Validator, raw: RawSpec | None, now_ns: int, prefix: str = "spec") -> OrderSpec | None:
    """Validate a spec and apply the defaults (time in force); None if any violation was recorded."""
    if raw is None:
        v.require(False, prefix, "required")
        return None
    before = len(v.violations)
    v.require(raw.side is not None, f"{prefix}.side", "required (BUY or SELL)")
    v.require(raw.order_type is not None, f"{prefix}.order_type", "required")
    v.require(raw.quantity is not None, f"{prefix}.quantity", "required")
    quantity = parse_decimal(v, f"{prefix}.quantity", raw.quantity)
    limit_price = parse_decimal(v, f"{prefix}.limit_price", raw.limit_price)
    stop_price = parse_decimal(v, f"{prefix}.stop_price", raw.stop_price)
    order_type = raw.order_type
    tif = raw.time_in_force
    if order_type is not None:
        limit_priced = order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
        stopped = order_type in (OrderType.STOP, OrderType.STOP_LIMIT)
        if limit_priced:
            v.require(raw.limit_price is not None, f"{prefix}.limit_price", f"required for {order_type.value}")
        else:
            v.require(raw.limit_price is None, f"{prefix}.limit_price", f"not allowed for {order_type.value}")
        if stopped:
            v.require(raw.stop_price is not None, f"{prefix}.stop_price", f"required for {order_type.value}")
        else:
            v.require(raw.stop_price is None, f"{prefix}.stop_price", f"not allowed for {order_type.value}")
        if tif is None:
            tif = TimeInForce.IOC if order_type == OrderType.MARKET else TimeInForce.GTC
        if order_type == OrderType.MARKET:
            v.require(
                tif in (TimeInForce.IOC, TimeInForce.FOK), f"{prefix}.time_in_force", "MARKET orders are IOC or FOK"
            )
        if raw.post_only:
            v.require(
                order_type == OrderType.LIMIT and tif in (TimeInForce.GTC, TimeInForce.GTD),
                f"{prefix}.post_only",
                "only for LIMIT orders with GTC or GTD",
            )
    if tif == TimeInForce.GTD:
        v.require(raw.expire_time_ns > now_ns, f"{prefix}.expire_time_ns", "required for GTD and in the future")
    else:
        v.require(raw.expire_time_ns == 0, f"{prefix}.expire_time_ns", "only for GTD orders")
    if len(v.violations) > before or raw.side is None or order_type is None or quantity is None or tif is None:
        return None
    return OrderSpec(
        side=raw.side,
        order_type=order_type,
        quantity=quantity,
        limit_price=limit_price,
        stop_price=stop_price,
        time_in_force=tif,
        expire_time_ns=raw.expire_time_ns,
        post_only=raw.post_only,
        reduce_only=raw.reduce_only,
    )
