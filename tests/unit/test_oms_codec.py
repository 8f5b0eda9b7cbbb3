"""OMS protobuf codec: every order event kind survives the journal round trip; reports and kill-switch events map
onto the domain; decimals leave in the normalized wire form."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from trade.live_gateway.v1 import events_pb2 as exec_pb2
from trade.oms.v1 import events_pb2
from trade.risk.v1 import events_pb2 as risk_events_pb2
from trade.type.v1 import decimal_pb2, errors_pb2, fill_pb2, venue_pb2

from services.oms.adapters.codec import event_from_pb, event_to_pb, kill_switch_from_pb, report_from_pb
from services.oms.domain.model import (
    EventDetail,
    EventKind,
    ExecType,
    Fill,
    Order,
    OrderChange,
    OrderSpec,
    OrderType,
    Side,
    Status,
    TimeInForce,
)
from services.oms.domain.validation import format_decimal

D = Decimal
SPEC = OrderSpec(Side.SELL, OrderType.STOP_LIMIT, D("1.5"), D("99.5"), D("100"), TimeInForce.GTD, 123, False, True)
ORDER = Order(
    "O1",
    "c1",
    "acct",
    "ETHUSDT",
    SPEC,
    Status.PARTIALLY_FILLED,
    "PRISM",
    10,
    20,
    version=3,
    cum_qty=D("0.5"),
    leaves_qty=D(1),
    avg_price=D("99.75"),
    cum_fee=D("0.01"),
    fee_currency="USDT",
    venue_order_id="V1",
    strategy_id="s1",
    parent_order_id="P1",
    reason="RISK_KILL_SWITCH",
    reason_message="halt",
)
FILL = Fill(
    "prism:T1:V1",
    D("99.75"),
    D("0.5"),
    D("-0.001"),
    "USDT",
    "MAKER",
    "PRISM",
    "V1",
    "T1",
    5,
    6,
    "O1",
    "c1",
    "acct",
    "ETHUSDT",
    Side.SELL,
    "s1",
    "P1",
)
DETAILS = {
    EventKind.ACCEPTED: EventDetail(risk_check_id="chk"),
    EventKind.REJECTED: EventDetail(reason="RISK_MAX_NOTIONAL", message="big", risk_check_id="chk"),
    EventKind.ACKNOWLEDGED: EventDetail(venue_order_id="V1"),
    EventKind.CANCEL_REQUESTED: EventDetail(requested_by="kill-switch", message="halt"),
    EventKind.CANCELED: EventDetail(quantity=D(1), reason="RISK_KILL_SWITCH"),
    EventKind.CANCEL_REJECTED: EventDetail(reason="TOO_LATE_TO_CANCEL", message="late"),
    EventKind.REPLACE_REQUESTED: EventDetail(new_spec=replace(SPEC, quantity=D(2)), requested_by="u1"),
    EventKind.REPLACED: EventDetail(previous_spec=SPEC, venue_order_id="V2"),
    EventKind.REPLACE_REJECTED: EventDetail(reason="TOO_LATE_TO_AMEND", message="no"),
    EventKind.EXPIRED: EventDetail(quantity=D(1)),
    EventKind.FILLED: EventDetail(fill=FILL),
}


@pytest.mark.parametrize("kind", list(EventKind))
def test_every_event_kind_round_trips_through_protobuf(kind: EventKind) -> None:
    change = OrderChange(ORDER, kind, DETAILS[kind], 7, 8, "rep-1")
    pb = event_to_pb(change)
    assert pb.event_id == "O1:3" and pb.order_version == 3 and pb.WhichOneof("event") == kind.value
    back = event_from_pb(events_pb2.OrderEvent.FromString(pb.SerializeToString()), "rep-1")
    assert back == change


def test_trade_report_maps_to_a_venue_report_with_its_fill() -> None:
    pb = exec_pb2.ExecutionReport(
        report_id="r1",
        account_id="acct",
        order_id="O1",
        venue_order_id="V1",
        exec_type=exec_pb2.EXEC_TYPE_TRADE,
        reason=errors_pb2.ERROR_REASON_UNSPECIFIED,
        fill=fill_pb2.Fill(
            fill_id="f1",
            price=decimal_pb2.Decimal(value="100.5"),
            quantity=decimal_pb2.Decimal(value="0.25"),
            venue=venue_pb2.VENUE_PRISM,
        ),
    )
    report = report_from_pb(pb)
    assert report is not None and report.exec_type == ExecType.TRADE and report.reason == ""
    assert report.fill is not None
    assert (report.fill.price, report.fill.quantity, report.fill.venue_order_id) == (D("100.5"), D("0.25"), "V1")


def test_unknown_exec_type_is_ignored() -> None:
    assert report_from_pb(exec_pb2.ExecutionReport(report_id="r", exec_type=exec_pb2.EXEC_TYPE_UNSPECIFIED)) is None


def test_only_engaged_kill_switches_with_a_valid_scope_act() -> None:
    ev = risk_events_pb2.KillSwitchEvent
    engaged = risk_events_pb2.KILL_SWITCH_ACTION_ENGAGED
    account = risk_events_pb2.KILL_SWITCH_SCOPE_ACCOUNT
    ks = kill_switch_from_pb(ev(event_id="e", action=engaged, scope=account, account_id="a1", event_time_ns=5))
    assert ks is not None and (ks.account_id, ks.event_time_ns) == ("a1", 5)
    glob = kill_switch_from_pb(ev(event_id="g", action=engaged, scope=risk_events_pb2.KILL_SWITCH_SCOPE_GLOBAL))
    assert glob is not None and glob.account_id == ""
    released = risk_events_pb2.KILL_SWITCH_ACTION_RELEASED
    assert kill_switch_from_pb(ev(event_id="r", action=released, scope=account, account_id="a1")) is None
    assert kill_switch_from_pb(ev(event_id="x", action=engaged, scope=account)) is None


@pytest.mark.parametrize(
    ("value", "text"),
    [("1.50", "1.5"), ("100", "100"), ("1E+2", "100"), ("-0", "0"), ("0.000", "0"), ("0.0001", "0.0001")],
)
def test_decimals_leave_in_normalized_form(value: str, text: str) -> None:
    assert format_decimal(D(value)) == text


def test_orders_decoded_from_the_journal_share_their_repeated_values() -> None:
    pb = event_to_pb(OrderChange(ORDER, EventKind.FILLED, DETAILS[EventKind.FILLED], 7, 8)).SerializeToString()
    first, second = (event_from_pb(events_pb2.OrderEvent.FromString(pb)) for _ in range(2))
    assert first == second
    a, b = first.order, second.order
    assert a.spec.quantity is b.spec.quantity and a.cum_qty is b.cum_qty and a.avg_price is b.avg_price
    assert a.account_id is b.account_id and a.symbol is b.symbol and a.venue is b.venue
    assert first.detail.fill is not None and second.detail.fill is not None
    assert first.detail.fill.price is second.detail.fill.price


def test_unknown_enum_numbers_decode_to_empty_names() -> None:
    order = event_to_pb(OrderChange(ORDER, EventKind.ACCEPTED, DETAILS[EventKind.ACCEPTED], 7, 8))
    order.order.venue = 999  # type: ignore[assignment]
    order.order.reason = 999  # type: ignore[assignment]
    back = event_from_pb(events_pb2.OrderEvent.FromString(order.SerializeToString())).order
    assert (back.venue, back.reason) == ("", "")
