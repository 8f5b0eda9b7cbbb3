"""Property test: random streams of venue reports and client commands against a reference model never produce an
illegal transition, an overfill, or quantities that disagree with the fills."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from services.oms.domain import machine
from services.oms.domain.model import (
    ExecType,
    Fill,
    Order,
    OrderChange,
    OrderSpec,
    OrderType,
    Side,
    Status,
    VenueReport,
)
from services.runtime.errors import DomainError

D = Decimal
S = Status
# trade.type.v1.OrderStatus's table, plus cancel from PENDING_NEW/PENDING_REPLACE (and back) and expiry/reject
# wherever the venue may still send them.
ALLOWED = {
    S.PENDING_NEW: {S.NEW, S.REJECTED, S.CANCELED, S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.EXPIRED},
    S.NEW: {S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.PENDING_REPLACE, S.CANCELED, S.EXPIRED},
    S.PARTIALLY_FILLED: {S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.PENDING_REPLACE, S.CANCELED, S.EXPIRED},
    S.PENDING_CANCEL: {
        S.CANCELED,
        S.PENDING_NEW,
        S.NEW,
        S.PARTIALLY_FILLED,
        S.FILLED,
        S.EXPIRED,
        S.REJECTED,
        S.PENDING_REPLACE,
    },
    S.PENDING_REPLACE: {S.NEW, S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.PENDING_CANCEL, S.EXPIRED},
}

quantities = st.integers(min_value=1, max_value=12).map(lambda n: D(n) / 2)
prices = st.integers(min_value=90, max_value=110).map(D)
fill_ids = st.sampled_from([f"f{i}" for i in range(12)])
report_ids = st.sampled_from([f"r{i}" for i in range(30)])

ops = st.one_of(
    st.tuples(st.just("fill"), report_ids, fill_ids, quantities, prices),
    st.tuples(st.just("report"), report_ids, st.sampled_from([e for e in ExecType if e != ExecType.TRADE])),
    st.tuples(st.just("cancel")),
    st.tuples(st.just("amend"), quantities),
)


@dataclass
class Reference:
    """What the order must look like, computed the simple way."""

    quantity: Decimal
    fills: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)

    @property
    def cum(self) -> Decimal:
        return sum((q for q, _ in self.fills.values()), D(0))


def first_order(quantity: Decimal) -> Order:
    spec = OrderSpec(Side.SELL, OrderType.LIMIT, quantity, limit_price=D(100))
    return machine.accept(Order("O1", "c1", "a", "X", spec, Status.PENDING_NEW, "PRISM", 1, 1), "risk").order


def check(before: Order, change: OrderChange | None, ref: Reference) -> Order:
    if change is None:
        return before
    after = change.order
    assert after.version == before.version + 1
    if after.status != before.status:
        assert after.status in ALLOWED.get(before.status, set()), f"{before.status} -> {after.status}"
    else:
        assert not before.done
    return after


def invariants(order: Order, ref: Reference) -> None:
    assert order.cum_qty == ref.cum
    assert order.cum_qty <= order.spec.quantity
    if order.done:
        assert order.leaves_qty == 0
    else:
        assert order.cum_qty + order.leaves_qty == order.spec.quantity
    if order.status == Status.FILLED:
        assert order.cum_qty == order.spec.quantity
    if ref.fills:
        notional = sum((q * p for q, p in ref.fills.values()), D(0))
        assert order.avg_price == machine.average_price(notional, ref.cum)
        assert abs(order.avg_price - notional / ref.cum) < D("1e-14")
    assert order.fill_ids == frozenset(ref.fills)


@settings(max_examples=300, deadline=None)
@given(quantity=quantities.map(lambda q: q * 2), steps=st.lists(ops, max_size=40))
def test_random_report_streams_keep_the_order_consistent(quantity: Decimal, steps: list[tuple[object, ...]]) -> None:
    order = first_order(quantity)
    ref = Reference(quantity)
    for i, op in enumerate(steps):
        now = 10 + i
        before = order
        try:
            if op[0] == "fill":
                _, rid, fid, qty, px = op
                assert isinstance(fid, str) and isinstance(qty, Decimal) and isinstance(px, Decimal)
                expect_applied = (
                    fid not in ref.fills and rid not in order.report_ids and not order.done and qty <= order.leaves_qty
                )
                fill = Fill(fid, px, qty, D("0.01"), "USDT")
                change = machine.apply_report(order, VenueReport(str(rid), "O1", ExecType.TRADE, fill=fill), now)
                order = check(before, change, ref)
                assert expect_applied == (change is not None)
                if change is not None:
                    ref.fills[fid] = (qty, px)
            elif op[0] == "report":
                _, rid, exec_type = op
                assert isinstance(exec_type, ExecType)
                change = machine.apply_report(order, VenueReport(str(rid), "O1", exec_type, venue_order_id="V"), now)
                order = check(before, change, ref)
            elif op[0] == "cancel":
                order = check(before, machine.request_cancel(order, "u", "", "", now), ref)
            else:
                new_qty = op[1]
                assert isinstance(new_qty, Decimal)
                spec = machine.amended_spec(order, new_qty, None, None)
                order = check(before, machine.request_replace(order, spec, "u", now), ref)
        except DomainError:
            assert order is before
            if op[0] == "fill" and expect_applied:
                raise AssertionError("a valid fill was refused") from None
        invariants(order, ref)
    if order.done:
        assert machine.apply_report(order, VenueReport("late", "O1", ExecType.CANCELED), 999) is None
