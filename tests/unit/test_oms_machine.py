"""The OMS order state machine: every legal transition, illegal ones refused without changing the order."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from services.oms.domain import machine
from services.oms.domain.model import (
    EventKind,
    ExecType,
    Fill,
    Order,
    OrderSpec,
    OrderType,
    Side,
    Status,
    VenueReport,
)
from services.runtime.errors import DomainError, ErrorKind

D = Decimal
NOW = 1_700_000_000_000_000_000


def new_order(qty: str = "10", order_type: OrderType = OrderType.LIMIT) -> Order:
    spec = OrderSpec(Side.BUY, order_type, D(qty), limit_price=D("100") if order_type == OrderType.LIMIT else None)
    order = Order("O1", "c1", "acct", "BTCUSDT", spec, Status.PENDING_NEW, "PRISM", NOW, NOW)
    return machine.accept(order, "risk-1").order


def report(exec_type: ExecType, rid: str, fill: Fill | None = None, venue_order_id: str = "V1") -> VenueReport:
    return VenueReport(rid, "O1", exec_type, fill=fill, venue_order_id=venue_order_id)


def trade(fid: str, qty: str, price: str = "100", fee: str = "0.1") -> VenueReport:
    return report(ExecType.TRADE, f"r-{fid}", Fill(fid, D(price), D(qty), D(fee), "USDT"))


def step(order: Order, r: VenueReport) -> Order:
    change = machine.apply_report(order, r, NOW + order.version)
    assert change is not None
    assert change.order.version == order.version + 1
    return change.order


def acked(qty: str = "10") -> Order:
    return step(new_order(qty), report(ExecType.NEW, "r-new"))


def test_accept_creates_version_one_pending_new_with_full_leaves() -> None:
    order = new_order()
    assert (order.status, order.version, order.leaves_qty, order.cum_qty) == (Status.PENDING_NEW, 1, D(10), D(0))


def test_risk_reject_creates_rejected_order_with_reason() -> None:
    base = replace(new_order(), version=0)
    change = machine.reject_new(base, "RISK_MAX_NOTIONAL", "too big", "risk-2")
    assert change.kind == EventKind.REJECTED
    assert (change.order.status, change.order.reason) == (Status.REJECTED, "RISK_MAX_NOTIONAL")
    assert change.order.leaves_qty == 0


def test_venue_ack_moves_pending_new_to_new() -> None:
    order = acked()
    assert (order.status, order.venue_order_id, order.acknowledged) == (Status.NEW, "V1", True)


def test_partial_then_full_fill_keeps_quantities_avg_price_and_fees() -> None:
    order = step(acked(), trade("f1", "4", "100"))
    assert (order.status, order.cum_qty, order.leaves_qty) == (Status.PARTIALLY_FILLED, D(4), D(6))
    order = step(order, trade("f2", "6", "110"))
    assert (order.status, order.cum_qty, order.leaves_qty) == (Status.FILLED, D(10), D(0))
    assert order.avg_price == D(106)
    assert order.cum_fee == D("0.2") and order.fee_currency == "USDT"


def test_fill_on_pending_new_order_is_applied() -> None:
    order = step(new_order(), trade("f1", "10"))
    assert order.status == Status.FILLED


def test_duplicate_fill_id_changes_nothing() -> None:
    order = step(acked(), trade("f1", "4"))
    again = VenueReport("other-report", "O1", ExecType.TRADE, fill=Fill("f1", D(100), D(4)))
    assert machine.apply_report(order, again, NOW) is None


def test_duplicate_report_id_changes_nothing() -> None:
    order = step(acked(), trade("f1", "4"))
    assert machine.apply_report(order, trade("f1", "4"), NOW) is None


def test_overfill_is_refused_and_order_is_unchanged() -> None:
    order = step(acked(), trade("f1", "8"))
    with pytest.raises(DomainError) as err:
        machine.apply_report(order, trade("f2", "3"), NOW)
    assert err.value.reason == "ILLEGAL_STATE_TRANSITION"
    assert order.cum_qty == D(8)


def test_cancel_request_then_venue_cancel() -> None:
    order = acked()
    change = machine.request_cancel(order, "u1", "", "", NOW)
    assert change is not None and change.order.status == Status.PENDING_CANCEL
    order = step(change.order, report(ExecType.CANCELED, "r-c"))
    assert (order.status, order.leaves_qty) == (Status.CANCELED, D(0))


def test_late_fill_after_cancel_request_is_applied() -> None:
    change = machine.request_cancel(step(acked(), trade("f1", "2")), "u1", "", "", NOW)
    assert change is not None
    order = step(change.order, trade("f2", "3"))
    assert (order.status, order.cum_qty, order.leaves_qty) == (Status.PENDING_CANCEL, D(5), D(5))
    order = step(order, report(ExecType.CANCELED, "r-c"))
    assert order.status == Status.CANCELED and order.cum_qty == D(5)


def test_late_fill_completing_the_order_during_pending_cancel_fills_it() -> None:
    change = machine.request_cancel(acked(), "u1", "", "", NOW)
    assert change is not None
    order = step(change.order, trade("f1", "10"))
    assert order.status == Status.FILLED


def test_cancel_reject_returns_to_previous_working_status() -> None:
    order = step(acked(), trade("f1", "2"))
    change = machine.request_cancel(order, "u1", "", "", NOW)
    assert change is not None
    order = step(change.order, report(ExecType.CANCEL_REJECTED, "r-cr"))
    assert (order.status, order.reason) == (Status.PARTIALLY_FILLED, "TOO_LATE_TO_CANCEL")


def test_cancel_of_pending_or_canceled_order_is_idempotent() -> None:
    change = machine.request_cancel(acked(), "u1", "", "", NOW)
    assert change is not None
    assert machine.request_cancel(change.order, "u1", "", "", NOW) is None
    canceled = step(change.order, report(ExecType.CANCELED, "r-c"))
    assert machine.request_cancel(canceled, "u1", "", "", NOW) is None


@pytest.mark.parametrize(
    "final",
    [
        lambda: step(acked(), trade("f1", "10")),
        lambda: step(new_order(), report(ExecType.REJECTED, "r-rej")),
        lambda: step(acked(), report(ExecType.EXPIRED, "r-exp")),
    ],
)
def test_cancel_of_filled_rejected_or_expired_order_is_too_late(final: object) -> None:
    assert callable(final)
    order = final()
    with pytest.raises(DomainError) as err:
        machine.request_cancel(order, "u1", "", "", NOW)
    assert (err.value.reason, err.value.kind) == ("TOO_LATE_TO_CANCEL", ErrorKind.FAILED_PRECONDITION)


def test_amend_is_cancel_replace_and_keeps_filled_quantity() -> None:
    order = step(acked(), trade("f1", "4"))
    spec = machine.amended_spec(order, D(6), D(99), None)
    change = machine.request_replace(order, spec, "u1", NOW)
    assert change.order.status == Status.PENDING_REPLACE and change.order.spec.quantity == D(10)
    order = step(change.order, report(ExecType.REPLACED, "r-rep", venue_order_id="V2"))
    assert (order.status, order.spec.quantity, order.spec.limit_price) == (Status.PARTIALLY_FILLED, D(6), D(99))
    assert (order.cum_qty, order.leaves_qty, order.venue_order_id) == (D(4), D(2), "V2")


def test_replace_reject_keeps_previous_spec() -> None:
    order = acked()
    change = machine.request_replace(order, machine.amended_spec(order, D(20), None, None), "u1", NOW)
    order = step(change.order, report(ExecType.REPLACE_REJECTED, "r-rr"))
    assert (order.status, order.spec.quantity, order.pending_spec) == (Status.NEW, D(10), None)


def test_amend_to_quantity_not_above_cum_qty_is_too_late() -> None:
    order = step(acked(), trade("f1", "4"))
    with pytest.raises(DomainError) as err:
        machine.amended_spec(order, D(4), None, None)
    assert err.value.reason == "TOO_LATE_TO_AMEND"


def test_amend_of_done_order_is_too_late_and_of_pending_order_illegal() -> None:
    with pytest.raises(DomainError) as err:
        machine.amended_spec(step(acked(), trade("f1", "10")), D(20), None, None)
    assert err.value.reason == "TOO_LATE_TO_AMEND"
    with pytest.raises(DomainError) as err:
        machine.amended_spec(new_order(), D(20), None, None)
    assert err.value.reason == "ILLEGAL_STATE_TRANSITION"


def test_amend_with_stale_expected_version_conflicts() -> None:
    order = acked()
    with pytest.raises(DomainError) as err:
        machine.amended_spec(order, D(20), None, None, expected_version=1)
    assert (err.value.reason, err.value.kind) == ("VERSION_CONFLICT", ErrorKind.ABORTED)


def test_fill_during_pending_replace_applies_to_current_quantity() -> None:
    order = acked()
    change = machine.request_replace(order, machine.amended_spec(order, D(5), None, None), "u1", NOW)
    order = step(change.order, trade("f1", "6"))
    assert (order.status, order.cum_qty) == (Status.PENDING_REPLACE, D(6))
    with pytest.raises(DomainError):
        machine.apply_report(order, report(ExecType.REPLACED, "r-rep"), NOW)


def test_fill_after_order_is_done_is_refused() -> None:
    order = step(acked(), report(ExecType.CANCELED, "r-c"))
    with pytest.raises(DomainError):
        machine.apply_report(order, trade("f1", "1"), NOW)


def test_venue_reject_after_acknowledgement_is_refused() -> None:
    with pytest.raises(DomainError):
        machine.apply_report(acked(), report(ExecType.REJECTED, "r-rej"), NOW)


def test_reports_that_change_nothing_return_none() -> None:
    order = acked()
    assert machine.apply_report(order, report(ExecType.NEW, "r-new-2"), NOW) is None
    assert machine.apply_report(order, report(ExecType.CANCEL_REJECTED, "r-cr"), NOW) is None
    assert machine.apply_report(order, report(ExecType.REPLACED, "r-rp"), NOW) is None
    canceled = step(order, report(ExecType.CANCELED, "r-c"))
    assert machine.apply_report(canceled, report(ExecType.CANCELED, "r-c2"), NOW) is None
    assert machine.apply_report(canceled, report(ExecType.EXPIRED, "r-e"), NOW) is None


def test_restore_rebuilds_derived_fields_and_ignores_old_versions() -> None:
    o1 = machine.accept(replace(new_order(), version=0), "risk")
    restored = machine.restore(None, o1)
    assert restored is not None and restored.version == 1
    o2 = machine.apply_report(o1.order, report(ExecType.NEW, "r-new"), NOW)
    assert o2 is not None
    spec = machine.amended_spec(o2.order, D(20), None, None)
    o3 = machine.request_replace(o2.order, spec, "u", NOW)
    o4 = machine.apply_report(o3.order, trade("f1", "1"), NOW)
    assert o4 is not None
    state = restored
    for change in (o2, o3, o4):
        bare = replace(
            change.order, acknowledged=False, pending_spec=None, fill_ids=frozenset(), report_ids=frozenset()
        )
        stripped = replace(change, order=replace(bare, cum_notional=D(0)))
        nxt = machine.restore(state, stripped)
        assert nxt is not None
        state = nxt
    assert state == o4.order
    assert machine.restore(state, o2) is None


def test_cancel_reject_of_unacknowledged_order_returns_to_pending_new() -> None:
    change = machine.request_cancel(new_order(), "u1", "", "", NOW)
    assert change is not None and change.order.status == Status.PENDING_CANCEL
    order = step(change.order, report(ExecType.CANCEL_REJECTED, "r-cr"))
    assert order.status == Status.PENDING_NEW
