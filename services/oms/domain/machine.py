"""The order state machine. Every function returns the next state (or None when the input changes nothing, for
example a duplicate report) or raises DomainError; an order is never mutated, so a refused input cannot leave it
half-changed."""

from __future__ import annotations

from dataclasses import replace
from decimal import ROUND_HALF_EVEN, Decimal

from services.oms.domain.model import (
    AVG_PRICE_QUANTUM,
    EventDetail,
    EventKind,
    ExecType,
    Fill,
    Order,
    OrderChange,
    OrderSpec,
    OrderType,
    Status,
    VenueReport,
    legal,
)
from services.runtime.errors import DomainError, ErrorKind

ZERO = Decimal(0)


def illegal(order: Order, what: str) -> DomainError:
    return DomainError(
        "ILLEGAL_STATE_TRANSITION",
        f"order {order.order_id} is {order.status.value}: {what}",
        ErrorKind.FAILED_PRECONDITION,
        metadata={"order_id": order.order_id, "status": order.status.value},
    )


def _change(
    before: Order | None,
    after: Order,
    kind: EventKind,
    detail: EventDetail,
    now_ns: int,
    event_time_ns: int = 0,
    report_id: str = "",
) -> OrderChange:
    if before is not None:
        if not legal(before.status, after.status):
            raise illegal(before, f"{kind.value} would move it to {after.status.value}")
        after = replace(after, version=before.version + 1)
    if report_id:
        after = replace(after, report_ids=after.report_ids | {report_id})
    after = replace(after, update_time_ns=now_ns)
    _check_invariants(after)
    return OrderChange(after, kind, detail, event_time_ns or now_ns, now_ns, report_id)


def _check_invariants(order: Order) -> None:
    qty = order.spec.quantity
    if order.cum_qty < ZERO or order.cum_qty > qty:
        raise illegal(order, f"cum_qty {order.cum_qty} outside [0, {qty}]")
    expected_leaves = ZERO if order.done else qty - order.cum_qty
    if order.leaves_qty != expected_leaves:
        raise illegal(order, f"leaves_qty {order.leaves_qty} != {expected_leaves}")
    if order.status == Status.FILLED and order.cum_qty != qty:
        raise illegal(order, "FILLED with cum_qty below the order quantity")


def accept(order: Order, risk_check_id: str) -> OrderChange:
    """A new order that passed risk: version 1, PENDING_NEW."""
    order = replace(order, status=Status.PENDING_NEW, version=1, leaves_qty=order.spec.quantity)
    return _change(None, order, EventKind.ACCEPTED, EventDetail(risk_check_id=risk_check_id), order.create_time_ns)


def reject_new(order: Order, reason: str, message: str, risk_check_id: str = "") -> OrderChange:
    """A new order refused by risk: version 1, REJECTED, queryable."""
    order = replace(order, status=Status.REJECTED, version=1, leaves_qty=ZERO, reason=reason, reason_message=message)
    detail = EventDetail(reason=reason, message=message, risk_check_id=risk_check_id)
    return _change(None, order, EventKind.REJECTED, detail, order.create_time_ns)


def _resume_status(order: Order) -> Status:
    """Where an order returns to when a pending cancel or replace is refused."""
    if order.cum_qty > ZERO:
        return Status.PARTIALLY_FILLED
    return Status.NEW if order.acknowledged else Status.PENDING_NEW


def request_cancel(order: Order, requested_by: str, reason: str, text: str, now_ns: int) -> OrderChange | None:
    """None when a cancel is already pending or done (cancel is idempotent)."""
    if order.status in (Status.PENDING_CANCEL, Status.CANCELED):
        return None
    if order.done:
        raise DomainError(
            "TOO_LATE_TO_CANCEL",
            f"order {order.order_id} is already {order.status.value}",
            ErrorKind.FAILED_PRECONDITION,
            metadata={"order_id": order.order_id, "status": order.status.value},
        )
    after = replace(order, status=Status.PENDING_CANCEL, reason=reason, reason_message=text)
    return _change(
        order, after, EventKind.CANCEL_REQUESTED, EventDetail(requested_by=requested_by, message=text), now_ns
    )


def amended_spec(
    order: Order,
    new_quantity: Decimal | None,
    new_limit_price: Decimal | None,
    new_stop_price: Decimal | None,
    expected_version: int = 0,
) -> OrderSpec:
    """The spec an amend asks for, after checking that the order can be amended to it."""
    if expected_version and expected_version != order.version:
        raise DomainError(
            "VERSION_CONFLICT",
            f"order {order.order_id} is at version {order.version}, not {expected_version}",
            ErrorKind.ABORTED,
            metadata={"order_id": order.order_id, "version": str(order.version)},
        )
    if order.done:
        raise DomainError(
            "TOO_LATE_TO_AMEND",
            f"order {order.order_id} is already {order.status.value}",
            ErrorKind.FAILED_PRECONDITION,
            metadata={"order_id": order.order_id, "status": order.status.value},
        )
    if order.status not in (Status.NEW, Status.PARTIALLY_FILLED):
        raise illegal(order, "only a working (acknowledged, not pending) order can be amended")
    spec = order.spec
    if new_quantity is not None:
        if new_quantity <= order.cum_qty:
            raise DomainError(
                "TOO_LATE_TO_AMEND",
                f"new quantity {new_quantity} is not above the filled quantity {order.cum_qty}",
                ErrorKind.FAILED_PRECONDITION,
                metadata={"order_id": order.order_id, "cum_qty": str(order.cum_qty)},
            )
        spec = replace(spec, quantity=new_quantity)
    if new_limit_price is not None:
        spec = replace(spec, limit_price=new_limit_price)
    if new_stop_price is not None:
        spec = replace(spec, stop_price=new_stop_price)
    return spec


def request_replace(order: Order, new_spec: OrderSpec, requested_by: str, now_ns: int) -> OrderChange:
    amended_spec(order, new_spec.quantity, None, None)
    after = replace(order, status=Status.PENDING_REPLACE, pending_spec=new_spec, reason="", reason_message="")
    detail = EventDetail(new_spec=new_spec, requested_by=requested_by)
    return _change(order, after, EventKind.REPLACE_REQUESTED, detail, now_ns)


def apply_report(order: Order, report: VenueReport, now_ns: int) -> OrderChange | None:
    """Apply one venue report. None for a duplicate or a report that changes nothing (e.g. a second CANCELED)."""
    if report.report_id and report.report_id in order.report_ids:
        return None
    handler = _HANDLERS[report.exec_type]
    return handler(order, report, now_ns)


def _on_new(order: Order, report: VenueReport, now_ns: int) -> OrderChange | None:
    if order.acknowledged or order.done:
        return None
    status = Status.NEW if order.status == Status.PENDING_NEW else order.status
    after = replace(
        order, status=status, acknowledged=True, venue_order_id=report.venue_order_id or order.venue_order_id
    )
    detail = EventDetail(venue_order_id=after.venue_order_id)
    return _change(order, after, EventKind.ACKNOWLEDGED, detail, now_ns, report.event_time_ns, report.report_id)


def apply_fill(order: Order, fill: Fill, now_ns: int, report_id: str = "") -> OrderChange | None:
    if fill.fill_id in order.fill_ids:
        return None
    if order.done:
        raise illegal(order, f"fill {fill.fill_id} for an order that is done")
    if fill.quantity <= ZERO or fill.price <= ZERO:
        raise illegal(order, f"fill {fill.fill_id} has quantity {fill.quantity} and price {fill.price}")
    if fill.quantity > order.leaves_qty:
        raise illegal(order, f"overfill: fill {fill.fill_id} of {fill.quantity} exceeds leaves {order.leaves_qty}")
    cum = order.cum_qty + fill.quantity
    notional = order.cum_notional + fill.price * fill.quantity
    if cum == order.spec.quantity:
        status = Status.FILLED
    elif order.status in (Status.PENDING_CANCEL, Status.PENDING_REPLACE):
        status = order.status
    else:
        status = Status.PARTIALLY_FILLED
    leaves = ZERO if status == Status.FILLED else order.spec.quantity - cum
    fill = replace(
        fill,
        order_id=order.order_id,
        client_order_id=order.client_order_id,
        account_id=order.account_id,
        symbol=order.symbol,
        side=order.spec.side,
        strategy_id=order.strategy_id,
        parent_order_id=order.parent_order_id,
        venue=fill.venue or order.venue,
        venue_order_id=fill.venue_order_id or order.venue_order_id,
    )
    after = replace(
        order,
        status=status,
        cum_qty=cum,
        leaves_qty=leaves,
        avg_price=average_price(notional, cum),
        cum_notional=notional,
        cum_fee=order.cum_fee + fill.fee,
        fee_currency=order.fee_currency or fill.fee_currency,
        acknowledged=True,
        venue_order_id=order.venue_order_id or fill.venue_order_id,
        pending_spec=None if status == Status.FILLED else order.pending_spec,
        fill_ids=order.fill_ids | {fill.fill_id},
    )
    return _change(order, after, EventKind.FILLED, EventDetail(fill=fill), now_ns, fill.event_time_ns, report_id)


def average_price(notional: Decimal, quantity: Decimal) -> Decimal:
    return (notional / quantity).quantize(AVG_PRICE_QUANTUM, rounding=ROUND_HALF_EVEN)


def _on_trade(order: Order, report: VenueReport, now_ns: int) -> OrderChange | None:
    if report.fill is None:
        raise illegal(order, f"TRADE report {report.report_id} without a fill")
    return apply_fill(order, report.fill, now_ns, report.report_id)


def _on_canceled(order: Order, report: VenueReport, now_ns: int) -> OrderChange | None:
    if order.done:
        return None
    after = replace(
        order,
        status=Status.CANCELED,
        leaves_qty=ZERO,
        pending_spec=None,
        reason=report.reason or order.reason,
        reason_message=report.text or order.reason_message,
    )
    detail = EventDetail(quantity=order.leaves_qty, reason=report.reason or order.reason)
    return _change(order, after, EventKind.CANCELED, detail, now_ns, report.event_time_ns, report.report_id)


def _on_cancel_rejected(order: Order, report: VenueReport, now_ns: int) -> OrderChange | None:
    if order.status != Status.PENDING_CANCEL:
        return None
    status = Status.PENDING_REPLACE if order.pending_spec is not None else _resume_status(order)
    reason = report.reason or "TOO_LATE_TO_CANCEL"
    after = replace(order, status=status, reason=reason, reason_message=report.text)
    detail = EventDetail(reason=reason, message=report.text)
    return _change(order, after, EventKind.CANCEL_REJECTED, detail, now_ns, report.event_time_ns, report.report_id)


def _on_replaced(order: Order, report: VenueReport, now_ns: int) -> OrderChange | None:
    if order.pending_spec is None or order.done:
        return None
    new_spec = order.pending_spec
    if new_spec.quantity <= order.cum_qty:
        raise illegal(order, f"replace to quantity {new_spec.quantity} at or below cum_qty {order.cum_qty}")
    status = order.status if order.status == Status.PENDING_CANCEL else _resume_status(order)
    after = replace(
        order,
        spec=new_spec,
        status=status,
        pending_spec=None,
        leaves_qty=new_spec.quantity - order.cum_qty,
        venue_order_id=report.venue_order_id or order.venue_order_id,
    )
    detail = EventDetail(previous_spec=order.spec, venue_order_id=after.venue_order_id)
    return _change(order, after, EventKind.REPLACED, detail, now_ns, report.event_time_ns, report.report_id)


def _on_replace_rejected(order: Order, report: VenueReport, now_ns: int) -> OrderChange | None:
    if order.pending_spec is None or order.done:
        return None
    status = order.status if order.status == Status.PENDING_CANCEL else _resume_status(order)
    reason = report.reason or "TOO_LATE_TO_AMEND"
    after = replace(order, status=status, pending_spec=None, reason=reason, reason_message=report.text)
    detail = EventDetail(reason=reason, message=report.text)
    return _change(order, after, EventKind.REPLACE_REJECTED, detail, now_ns, report.event_time_ns, report.report_id)


def _on_rejected(order: Order, report: VenueReport, now_ns: int) -> OrderChange | None:
    if order.done:
        return None
    if order.acknowledged or order.cum_qty > ZERO:
        raise illegal(order, "the venue rejected an order it had acknowledged")
    reason = report.reason or "VENUE_REJECTED"
    after = replace(
        order, status=Status.REJECTED, leaves_qty=ZERO, pending_spec=None, reason=reason, reason_message=report.text
    )
    detail = EventDetail(reason=reason, message=report.text)
    return _change(order, after, EventKind.REJECTED, detail, now_ns, report.event_time_ns, report.report_id)


def _on_expired(order: Order, report: VenueReport, now_ns: int) -> OrderChange | None:
    if order.done:
        return None
    after = replace(order, status=Status.EXPIRED, leaves_qty=ZERO, pending_spec=None)
    detail = EventDetail(quantity=order.leaves_qty)
    return _change(order, after, EventKind.EXPIRED, detail, now_ns, report.event_time_ns, report.report_id)


def _on_triggered(order: Order, report: VenueReport, now_ns: int) -> OrderChange | None:
    return None


_HANDLERS = {
    ExecType.NEW: _on_new,
    ExecType.TRADE: _on_trade,
    ExecType.CANCELED: _on_canceled,
    ExecType.CANCEL_REJECTED: _on_cancel_rejected,
    ExecType.REPLACED: _on_replaced,
    ExecType.REPLACE_REJECTED: _on_replace_rejected,
    ExecType.REJECTED: _on_rejected,
    ExecType.EXPIRED: _on_expired,
    ExecType.TRIGGERED: _on_triggered,
}


def restore(previous: Order | None, change: OrderChange) -> Order | None:
    """Replay: the journal carries each order's full state; derive what the wire Order does not carry.

    Returns None for an event that is not the next version (a duplicate or an older event).
    """
    if previous is not None and change.order.version <= previous.version:
        return None
    if previous is None and change.kind not in (EventKind.ACCEPTED, EventKind.REJECTED):
        return None
    prior = previous or change.order
    pending = prior.pending_spec
    if change.kind == EventKind.REPLACE_REQUESTED:
        pending = change.detail.new_spec
    elif change.kind in (EventKind.REPLACED, EventKind.REPLACE_REJECTED) or change.order.done:
        pending = None
    acknowledged = prior.acknowledged or change.kind in (EventKind.ACKNOWLEDGED, EventKind.FILLED, EventKind.REPLACED)
    fill_ids = prior.fill_ids if previous is not None else frozenset()
    notional = prior.cum_notional if previous is not None else ZERO
    if change.detail.fill is not None:
        fill_ids = fill_ids | {change.detail.fill.fill_id}
        notional += change.detail.fill.price * change.detail.fill.quantity
    report_ids = prior.report_ids if previous is not None else frozenset()
    if change.report_id:
        report_ids = report_ids | {change.report_id}
    return replace(
        change.order,
        # The same values; sharing the first version's strings, which the book's indexes hold, saves memory.
        order_id=prior.order_id,
        client_order_id=prior.client_order_id,
        pending_spec=pending,
        acknowledged=acknowledged,
        fill_ids=fill_ids,
        report_ids=report_ids,
        cum_notional=notional,
    )


def is_limit_priced(order_type: OrderType) -> bool:
    return order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
