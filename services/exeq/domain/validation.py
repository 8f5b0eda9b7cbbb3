"""Validation of SubmitParentOrder: every bad field is reported at once (INVALID_ARGUMENT + field violations)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal

from services.exeq.domain.model import Algo, Instrument, SubmitParent
from services.exeq.domain.slicing import NS_PER_DAY, is_lot_multiple
from services.runtime.errors import DomainError, ErrorKind, FieldViolation, Validator, invalid_argument

ACCOUNT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
CLIENT_ORDER_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
MAX_SLICES = 10_000
MAX_CHILDREN = 10_000
MAX_DURATION_NS = 7 * NS_PER_DAY


def validate_submit(
    cmd: SubmitParent, instruments: Mapping[str, Instrument], now_ns: int, max_participation: Decimal
) -> Instrument:
    """The parent's instrument if the command is valid; raises DomainError otherwise."""
    v = Validator()
    v.require(bool(ACCOUNT_ID.fullmatch(cmd.account_id)), "account_id", "required: 1-64 characters [A-Za-z0-9_-]")
    v.require(
        bool(CLIENT_ORDER_ID.fullmatch(cmd.client_order_id)),
        "client_order_id",
        "required: 1-64 characters [A-Za-z0-9._:-]",
    )
    v.require(cmd.side in ("BUY", "SELL"), "side", "required: BUY or SELL")
    v.require(cmd.algo is not None, "algo", "required")
    instrument = instruments.get(cmd.symbol)
    if not cmd.symbol:
        v.require(False, "symbol", "required")
    elif instrument is None:
        v.require(False, "symbol", f"unknown symbol {cmd.symbol!r}")
    if cmd.quantity is None:
        v.require(False, "quantity", "required")
    else:
        v.require(cmd.quantity > 0, "quantity", "must be > 0")
        if instrument is not None and cmd.quantity > 0:
            v.require(
                is_lot_multiple(cmd.quantity, instrument.lot_size),
                "quantity",
                f"must be a multiple of the lot size {instrument.lot_size}",
            )
    if cmd.limit_price is not None:
        v.require(cmd.limit_price > 0, "limit_price", "must be > 0")
    _validate_params(v, cmd, instrument, now_ns, max_participation)
    if v.violations and instrument is None and cmd.symbol and len(v.violations) == 1:
        raise invalid_argument(*v.violations, reason="UNKNOWN_SYMBOL")
    v.raise_if_any()
    assert instrument is not None
    return instrument


def _validate_params(
    v: Validator, cmd: SubmitParent, instrument: Instrument | None, now_ns: int, max_participation: Decimal
) -> None:
    p = cmd.params
    v.require(p.start_time_ns >= 0, "params.start_time_ns", "must be >= 0")
    v.require(p.duration_ns >= 0, "params.duration_ns", "must be >= 0")
    v.require(p.duration_ns <= MAX_DURATION_NS, "params.duration_ns", "must be at most 7 days")
    v.require(p.slice_count <= MAX_SLICES, "params.slice_count", f"must be at most {MAX_SLICES}")
    v.require(not p.passive, "params.passive", "passive child orders are not supported yet")
    for i, venue in enumerate(p.venue_preference):
        v.require(bool(venue), f"params.venue_preference[{i}]", "must not be VENUE_UNSPECIFIED")
    if p.max_child_quantity is not None:
        v.require(p.max_child_quantity > 0, "params.max_child_quantity", "must be > 0")
        if instrument is not None and p.max_child_quantity > 0:
            v.require(
                p.max_child_quantity >= instrument.lot_size,
                "params.max_child_quantity",
                f"must be at least the lot size {instrument.lot_size}",
            )
        if cmd.quantity is not None and p.max_child_quantity > 0:
            v.require(
                cmd.quantity / p.max_child_quantity <= MAX_CHILDREN,
                "params.max_child_quantity",
                f"would split the order into more than {MAX_CHILDREN} child orders",
            )
    algo = cmd.algo
    if algo in (Algo.TWAP, Algo.VWAP):
        v.require(p.duration_ns > 0, "params.duration_ns", f"must be > 0 for {algo.value}")
        v.require(p.participation_rate is None, "params.participation_rate", f"must be unset for {algo.value}")
    elif algo == Algo.POV:
        rate = p.participation_rate
        v.require(
            rate is not None and 0 < rate <= max_participation,
            "params.participation_rate",
            f"required for POV: 0 < rate <= {max_participation}",
        )
        v.require(p.slice_count == 0, "params.slice_count", "must be unset for POV")
    elif algo == Algo.IMMEDIATE:
        v.require(p.duration_ns == 0, "params.duration_ns", "must be unset for IMMEDIATE")
        v.require(p.slice_count == 0, "params.slice_count", "must be unset for IMMEDIATE")
        v.require(p.participation_rate is None, "params.participation_rate", "must be unset for IMMEDIATE")
    if p.duration_ns > 0 and algo != Algo.IMMEDIATE:
        start = p.start_time_ns or now_ns
        v.require(start + p.duration_ns > now_ns, "params.duration_ns", "the schedule would end in the past")


def duplicate_mismatch(client_order_id: str) -> DomainError:
    return DomainError(
        "DUPLICATE_CLIENT_ORDER_ID_MISMATCH",
        f"client_order_id {client_order_id!r} was already used for a different parent order",
        ErrorKind.ALREADY_EXISTS,
        metadata={"client_order_id": client_order_id},
    )


__all__ = ["FieldViolation", "duplicate_mismatch", "validate_submit"]
