"""The state feeds: protobuf fills, order events, quotes, PnL and RISK records applied to the in-memory books
idempotently; the limits TOML."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st
from trade.normalizer.v1 import events_pb2 as md_events_pb2
from trade.oms.v1 import events_pb2 as oms_events_pb2
from trade.pnl.v1 import events_pb2 as pnl_events_pb2
from trade.type.v1 import decimal_pb2, fill_pb2, market_data_pb2, order_pb2, pnl_pb2

from services.risk.adapters.codec import apply_fill, apply_order_event, audit_pb, kill_event_pb
from services.risk.adapters.limits_file import load_limits, parse_limits
from services.risk.adapters.nats_events import apply_risk_message
from services.risk.adapters.nats_state import apply_pnl, apply_quote
from services.risk.domain.killswitch import KillSwitchBook
from services.risk.domain.limits import AuditQuery, LimitsBook
from services.risk.domain.model import (
    AccountLimits,
    KillSwitchEvent,
    KillSwitchScope,
    LimitChange,
    OpenExposure,
    PositionLimit,
    Side,
)
from services.risk.domain.state import ExposureBook, MidBook, PnlBook, trading_day
from services.risk.settings import RiskSettings
from tests.support.marketdata import md_message
from tests.unit.risk_support import BTC, DEFAULTS, T0, D


def _dec(text: str) -> decimal_pb2.Decimal:
    return decimal_pb2.Decimal(value=text)


def _fill(fill_id: str, side: order_pb2.Side.ValueType, qty: str) -> bytes:
    return fill_pb2.Fill(
        fill_id=fill_id,
        account_id="a",
        symbol="BTCUSDT",
        side=side,
        quantity=_dec(qty),
        price=_dec("1"),
    ).SerializeToString()


def _order_event(version: int, status: int, qty: str, cum: str, leaves: str, side: int = order_pb2.SIDE_BUY) -> bytes:
    order = order_pb2.Order(
        order_id="o1",
        account_id="a",
        symbol="BTCUSDT",
        spec=order_pb2.OrderSpec(side=side, order_type=order_pb2.ORDER_TYPE_LIMIT, quantity=_dec(qty)),  # type: ignore[arg-type]
        status=status,  # type: ignore[arg-type]
        cum_qty=_dec(cum),
        leaves_qty=_dec(leaves),
        version=version,
    )
    return oms_events_pb2.OrderEvent(
        event_id=f"o1:{version}", order_id="o1", order_version=version, order=order
    ).SerializeToString()


def test_fills_build_the_net_position_and_a_replayed_fill_changes_nothing() -> None:
    book = ExposureBook()
    assert apply_fill(book, _fill("f1", order_pb2.SIDE_BUY, "2"))
    assert apply_fill(book, _fill("f2", order_pb2.SIDE_SELL, "0.5"))
    assert not apply_fill(book, _fill("f1", order_pb2.SIDE_BUY, "2"))
    assert book.position("a", "BTCUSDT") == D("1.5")


def test_order_events_track_open_quantity_and_ignore_stale_versions() -> None:
    book = ExposureBook()
    apply_order_event(book, _order_event(1, order_pb2.ORDER_STATUS_PENDING_NEW, "5", "0", "5"))
    apply_order_event(book, _order_event(3, order_pb2.ORDER_STATUS_PARTIALLY_FILLED, "5", "2", "3"))
    assert not apply_order_event(book, _order_event(2, order_pb2.ORDER_STATUS_NEW, "5", "0", "5"))
    [open_order] = book.open_orders("a")
    assert open_order.leaves_qty == D("3") and open_order.side is Side.BUY
    apply_order_event(book, _order_event(4, order_pb2.ORDER_STATUS_CANCELED, "5", "2", "0"))
    assert book.open_orders("a") == []
    assert not apply_order_event(book, _order_event(3, order_pb2.ORDER_STATUS_PARTIALLY_FILLED, "5", "2", "3"))
    assert book.open_orders("a") == []


def test_order_leaves_fall_back_to_quantity_minus_cum_when_absent() -> None:
    book = ExposureBook()
    apply_order_event(book, _order_event(1, order_pb2.ORDER_STATUS_NEW, "5", "1.5", ""))
    assert book.open_orders("a")[0].leaves_qty == D("3.5")


def _quote(symbol: str, bid: str, ask: str = "") -> md_events_pb2.MarketDataEvent:
    quote = market_data_pb2.Quote(symbol=symbol, bid_price=_dec(bid))
    if ask:
        quote.ask_price.value = ask
    return md_events_pb2.MarketDataEvent(quote=quote)


def test_quote_sets_the_mid_which_goes_stale() -> None:
    mids = MidBook(max_age_ns=10**9)
    assert apply_quote(mids, md_message(_quote("BTCUSDT", "100", "101")), T0)
    assert mids.mid("BTCUSDT", T0) == D("100.5")
    assert mids.mid("BTCUSDT", T0 + 2 * 10**9) is None
    assert not apply_quote(mids, md_message(_quote("ETHUSDT", "1")), T0)


def test_the_last_two_sided_quote_of_a_message_sets_the_mid() -> None:
    mids = MidBook(max_age_ns=0)
    trade = md_events_pb2.MarketDataEvent(trade=market_data_pb2.Trade(symbol="BTCUSDT"))
    assert apply_quote(mids, md_message(_quote("BTCUSDT", "100", "101"), _quote("BTCUSDT", "200", "202"), trade), T0)
    assert mids.mid("BTCUSDT", T0) == D("201")
    assert apply_quote(mids, md_message(_quote("BTCUSDT", "300", "302"), _quote("BTCUSDT", "1")), T0)
    assert mids.mid("BTCUSDT", T0) == D("301")  # the one-sided last quote has no mid: the one before wins
    assert not apply_quote(mids, md_message(), T0)


def test_pnl_snapshot_keeps_the_latest_day_net_pnl_of_today() -> None:
    pnl = PnlBook()
    day = trading_day(T0)

    def snap(as_of: int, value: str) -> bytes:
        return pnl_events_pb2.PnlSnapshot(
            account_id="a", trading_day=day, as_of_time_ns=as_of, total=pnl_pb2.Pnl(day_net_pnl=_dec(value))
        ).SerializeToString()

    assert apply_pnl(pnl, snap(T0, "-10"))
    assert not apply_pnl(pnl, snap(T0 - 1, "-99"))
    assert pnl.day_net_pnl("a", T0) == D("-10")
    assert pnl.day_net_pnl("a", T0 + 86_400 * 10**9) is None
    assert pnl.day_net_pnl("b", T0) is None


def test_risk_stream_records_round_trip_into_fresh_books() -> None:
    limits, kills = LimitsBook(DEFAULTS, [BTC]), KillSwitchBook()
    account = AccountLimits(
        "a",
        max_order_notional=D("5"),
        max_open_orders=1,
        max_orders_per_second=2,
        daily_loss_limit=D("3"),
        position_limits=(PositionLimit("BTCUSDT", D("1.5")),),
        version=4,
        update_time_ns=T0,
        updated_by="rm",
    )
    change = LimitChange("x1", "rm", T0, "why", account_id="a", old_account=None, new_account=account)
    inst = LimitChange(
        "x2",
        "rm",
        T0,
        "why",
        symbol="BTCUSDT",
        old_instrument=BTC,
        new_instrument=dataclasses.replace(BTC, price_band_bps=1),
    )
    event = KillSwitchEvent("k1", True, KillSwitchScope.ACCOUNT, "a", "rm", "stop", T0)
    assert apply_risk_message("risk.limits.audit", audit_pb(change).SerializeToString(), limits, kills)
    assert apply_risk_message("risk.limits.audit", audit_pb(inst).SerializeToString(), limits, kills)
    assert apply_risk_message("risk.killswitch.account.a", kill_event_pb(event).SerializeToString(), limits, kills)
    assert not apply_risk_message("risk.limits.audit", audit_pb(change).SerializeToString(), limits, kills)
    assert limits.account("a") == account
    assert limits.instrument("BTCUSDT") == dataclasses.replace(BTC, price_band_bps=1)
    assert kills.halted("a") is not None
    assert limits.audit(AuditQuery(symbol="BTCUSDT"))[0][0].old_instrument == BTC


def test_the_shipped_limits_file_parses_into_known_instruments() -> None:
    config = load_limits(RiskSettings().limits_file)
    assert {i.symbol for i in config.instruments} >= {"BTCUSDT", "ETHUSDT", "SOLUSDT"}
    assert config.account_defaults.is_default and config.account_defaults.max_open_orders > 0


def test_limits_file_compliance_section() -> None:
    config = parse_limits(
        {
            "compliance": {
                "restricted_symbols": {"GMEUSDT": "halted"},
                "account_restrictions": {"acct-x": ["BTCUSDT"]},
                "trading_windows": {"ETHUSDT": {"start_minute": 60, "end_minute": 120, "weekdays": [1]}},
            }
        }
    )
    assert config.compliance.restricted_symbols == {"GMEUSDT": "halted"}
    assert config.compliance.account_restricted_symbols == {"acct-x": ("BTCUSDT",)}
    assert config.compliance.trading_windows["ETHUSDT"].weekdays == (1,)
    assert config.instruments == ()


_ORDER_EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["o1", "o2", "o3", "o4", "o5"]),
        st.sampled_from(["BTCUSDT", "ETHUSDT"]),
        st.sampled_from([Side.BUY, Side.SELL]),
        st.decimals(min_value=0, max_value=1000, places=8),
        st.booleans(),
        st.integers(min_value=1, max_value=12),
    ),
    max_size=60,
)


@given(_ORDER_EVENTS, st.sampled_from(["", "o1", "o3"]))
def test_open_exposure_kept_per_event_equals_the_one_computed_from_the_open_orders(
    events: list[tuple[str, str, Side, Decimal, bool, int]], amend_order_id: str
) -> None:
    book = ExposureBook()
    for order_id, symbol, side, leaves, is_open, version in events:
        # One order keeps its account, symbol and side; only its state moves.
        symbol, side = {"o1": ("BTCUSDT", Side.BUY), "o2": ("BTCUSDT", Side.SELL)}.get(order_id, (symbol, side))
        book.apply_order(order_id, "a", symbol, side, leaves, is_open, version)
    for symbol in ("BTCUSDT", "ETHUSDT"):
        kept = book.open_exposure("a", symbol, amend_order_id)
        assert kept == OpenExposure.of(book.open_orders("a"), symbol, amend_order_id)
