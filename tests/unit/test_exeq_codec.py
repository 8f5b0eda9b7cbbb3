"""exeq protobuf codec: parent orders survive the round trip through their published form; OMS events map to
router views and child updates; every public trade of an MD message reaches the POV engine."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

import pytest
from nats.aio.msg import Msg
from trade.exeq.v1 import events_pb2 as exeq_events_pb2
from trade.normalizer.v1 import events_pb2 as md_events_pb2
from trade.oms.v1 import events_pb2 as oms_events_pb2
from trade.type.v1 import decimal_pb2, fill_pb2, market_data_pb2, order_pb2, venue_pb2

from services.exeq.adapters.codec import (
    child_update,
    fmt,
    market_trades,
    order_event_view,
    params_from,
    parent_from,
    parent_pb,
)
from services.exeq.adapters.ids import ulid
from services.exeq.adapters.nats_io import MarketTradeFeed, decode_deliveries
from services.exeq.adapters.oms import venue_has_answered
from services.exeq.domain.model import Algo, AlgoParams, ParentOrder, ParentStatus
from services.runtime.errors import DomainError, ErrorKind
from tests.support.marketdata import md_message


def test_parent_order_round_trips_through_its_published_form() -> None:
    parent = ParentOrder(
        parent_order_id="01HX",
        client_order_id="c-1",
        account_id="ACC-1",
        symbol="BTCUSDT",
        side="SELL",
        quantity=Decimal("1.25"),
        limit_price=Decimal("60000.5"),
        algo=Algo.POV,
        params=AlgoParams(
            start_time_ns=5,
            duration_ns=10,
            participation_rate=Decimal("0.25"),
            venue_preference=("PRISM", "PAPER"),
            max_child_quantity=Decimal("0.1"),
        ),
        strategy_id="s-1",
        status=ParentStatus.WORKING,
        create_time_ns=1,
        update_time_ns=2,
        cum_qty=Decimal("0.5"),
        notional=Decimal("30000.25"),
        child_order_count=3,
        scheduled_qty=Decimal("0.75"),
        reason="RISK_MAX_NOTIONAL",
        reason_message="too big",
        version=9,
    )
    msg = parent_pb(parent)
    assert msg.leaves_qty.value == "0.75" and msg.avg_price.value == "60000.5"
    assert msg.status == exeq_events_pb2.PARENT_ORDER_STATUS_WORKING
    back = parent_from(exeq_events_pb2.ParentOrder.FromString(msg.SerializeToString()))
    assert back is not None
    assert back.params == parent.params
    for name in ("parent_order_id", "side", "quantity", "limit_price", "algo", "status", "cum_qty", "version"):
        assert getattr(back, name) == getattr(parent, name), name
    assert back.notional == parent.notional and back.reason == "RISK_MAX_NOTIONAL"


def test_decimals_are_emitted_normalized() -> None:
    assert [fmt(Decimal(v)) for v in ("1.500", "-0", "0E-8", "100", "1E+2")] == ["1.5", "0", "0", "100", "100"]


def test_malformed_request_decimal_is_a_field_violation() -> None:
    msg = exeq_events_pb2.AlgoParams(participation_rate=decimal_pb2.Decimal(value="1e-1"))
    with pytest.raises(DomainError) as err:
        params_from(msg)
    assert err.value.kind == ErrorKind.INVALID_ARGUMENT
    assert [v.field for v in err.value.violations] == ["params.participation_rate"]


def _event(kind: str, parent_order_id: str = "") -> oms_events_pb2.OrderEvent:
    event = oms_events_pb2.OrderEvent(
        event_id="O1:4",
        account_id="ACC-1",
        symbol="BTCUSDT",
        order_id="O1",
        client_order_id="P9-2",
        order_version=4,
        order=order_pb2.Order(
            order_id="O1",
            client_order_id="P9-2",
            status=order_pb2.ORDER_STATUS_PARTIALLY_FILLED,
            venue=venue_pb2.VENUE_PAPER,
            parent_order_id=parent_order_id,
            spec=order_pb2.OrderSpec(quantity=decimal_pb2.Decimal(value="2")),
            cum_qty=decimal_pb2.Decimal(value="0.5"),
            avg_price=decimal_pb2.Decimal(value="10"),
            version=4,
        ),
    )
    if kind == "filled":
        fill = fill_pb2.Fill(
            fill_id="F1", quantity=decimal_pb2.Decimal(value="0.5"), price=decimal_pb2.Decimal(value="10")
        )
        event.filled.fill.CopyFrom(fill)
    else:
        getattr(event, kind).SetInParent()
    return event


def test_order_event_view_carries_the_routing_fields() -> None:
    view = order_event_view(_event("cancel_requested"))
    assert (view.order_id, view.kind, view.version, view.venue) == ("O1", "cancel_requested", 4, "PAPER")


def test_order_event_view_says_whether_jetstream_delivered_the_event_before() -> None:
    msgs = [
        cast(Msg, _Delivered(_event("accepted").SerializeToString(), 1)),
        cast(Msg, _Delivered(_event("accepted").SerializeToString(), 2)),
        cast(Msg, _Delivered(b"\xff\xff", 3)),
    ]
    assert [again for _, again in decode_deliveries(msgs)] == [False, True]
    assert order_event_view(_event("accepted"), True).redelivered


class _Delivered:
    def __init__(self, data: bytes, num_delivered: int) -> None:
        self.data, self.subject = data, "orders.ACC.O1"
        self.metadata = Msg.Metadata(
            sequence=Msg.Metadata.SequencePair(1, 1),
            num_pending=0,
            num_delivered=num_delivered,
            timestamp=None,  # type: ignore[arg-type]
            stream="ORDERS",
            consumer="exeq-router",
        )


@pytest.mark.parametrize(
    ("status", "venue_order_id", "answered"),
    [
        (order_pb2.ORDER_STATUS_PENDING_NEW, "", False),
        (order_pb2.ORDER_STATUS_PENDING_CANCEL, "", False),
        (order_pb2.ORDER_STATUS_PENDING_REPLACE, "", False),
        (order_pb2.ORDER_STATUS_PENDING_NEW, "V1", True),
        (order_pb2.ORDER_STATUS_PENDING_CANCEL, "V1", True),
        (order_pb2.ORDER_STATUS_NEW, "V1", True),
        (order_pb2.ORDER_STATUS_FILLED, "", True),
        (order_pb2.ORDER_STATUS_REJECTED, "", True),
        (order_pb2.ORDER_STATUS_CANCELED, "", True),
    ],
)
def test_the_venue_has_answered_a_placement_once_the_order_has_a_venue_id_or_left_the_pending_states(
    status: order_pb2.OrderStatus.ValueType, venue_order_id: str, answered: bool
) -> None:
    assert venue_has_answered(order_pb2.Order(status=status, venue_order_id=venue_order_id)) is answered


def test_child_update_only_for_child_orders_with_the_fill_and_a_snapshot() -> None:
    assert child_update(_event("filled")) is None
    update = child_update(_event("filled", parent_order_id="P9"))
    assert update is not None
    assert (update.parent_order_id, update.fill_id, update.fill_qty, update.status) == (
        "P9",
        "F1",
        Decimal("0.5"),
        "PARTIALLY_FILLED",
    )
    assert update.snapshot is not None and update.snapshot.n == 2 and update.snapshot.notional == Decimal(5)


def test_ulids_are_26_crockford_characters_and_sort_by_time() -> None:
    a, b = ulid(1_000), ulid(2_000)
    assert len(a) == 26 and a < b
    assert set(a) <= set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")


def _trade(seq: int, qty: str) -> md_events_pb2.MarketDataEvent:
    return md_events_pb2.MarketDataEvent(
        event_id=f"trade:BTCUSDT:{seq}",
        trade=market_data_pb2.Trade(
            symbol="BTCUSDT", quantity=decimal_pb2.Decimal(value=qty), sequence=seq, event_time_ns=100 + seq
        ),
    )


def test_market_trades_are_every_trade_of_an_md_message_in_order() -> None:
    data = md_message(_trade(1, "0.5"), _trade(2, "1.25"), _trade(3, "bad"))
    assert market_trades(data) == [(Decimal("0.5"), 101), (Decimal("1.25"), 102), (Decimal(0), 103)]


async def test_market_trade_feed_counts_the_volume_of_all_trades_and_skips_malformed_messages() -> None:
    class Engine:
        def __init__(self) -> None:
            self.trades: list[tuple[str, Decimal, int]] = []

        def wants_trades(self, symbol: str) -> bool:
            return True

        def on_market_trade(self, symbol: str, quantity: Decimal, event_time_ns: int) -> None:
            self.trades.append((symbol, quantity, event_time_ns))

    engine = Engine()
    feed = MarketTradeFeed(cast(Any, None), "md.trade", cast(Any, engine))

    def msg(data: bytes) -> Msg:
        return Msg(cast(Any, None), "md.trade.BTCUSDT", "", data, None)

    await feed._on_msg(msg(md_message(_trade(1, "2"), _trade(2, "3"))))
    await feed._on_msg(msg(b"\xff\xff"))
    await feed._on_msg(msg(md_message(_trade(3, "4"))))
    assert engine.trades == [("BTCUSDT", Decimal(2), 101), ("BTCUSDT", Decimal(3), 102), ("BTCUSDT", Decimal(4), 103)]
    assert feed.malformed == 1
