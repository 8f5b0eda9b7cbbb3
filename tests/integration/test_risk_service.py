"""risk in-process against the real NATS and OPA: CheckOrder over gRPC with reasons, compliance from OPA, kill
switch events on RISK, limits audited, and state (kill switches, limits, positions) rebuilt by a new instance."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal

import aiohttp
import grpc
import pytest
from nats.js import api
from trade.normalizer.v1 import events_pb2 as md_events_pb2
from trade.oms.v1 import events_pb2 as oms_events_pb2
from trade.risk.v1 import events_pb2, limits_pb2, risk_pb2, risk_pb2_grpc
from trade.type.v1 import decimal_pb2, errors_pb2, fill_pb2, market_data_pb2, order_pb2

from services.risk.adapters.codec import apply_order_event
from services.risk.adapters.limits_file import load_limits
from services.risk.adapters.nats_state import Feed, NatsStateFeeds
from services.risk.adapters.snapshot import BUCKET as SNAPSHOT_BUCKET
from services.risk.bootstrap import Risk, compose
from services.risk.domain.model import ComplianceConfig
from services.risk.domain.state import ExposureBook, MidBook
from services.risk.servicer import RiskServicer
from services.risk.settings import RiskSettings
from services.runtime.bus import Bus, StreamSpec
from services.runtime.identity import JWT_PAYLOAD_HEADER
from services.runtime.server import Registration, RunningServer, start_server
from services.runtime.streams import FILLS, MARKET_DATA, ORDERS, RISK
from tests.support.marketdata import md_message

pytestmark = pytest.mark.usefixtures("mesh")

R = errors_pb2
# The OMS gives CheckOrder ~300 ms; functional calls here allow more so a loaded CI box does not flake them.
CHECK_DEADLINE_S = 2.0


def _dec(text: str) -> decimal_pb2.Decimal:
    return decimal_pb2.Decimal(value=text)


def manager_md(user: str = "u-risk-test") -> tuple[tuple[str, str], ...]:
    payload = json.dumps({"sub": user, "roles": ["risk_manager"], "accounts": []}).encode()
    return ((JWT_PAYLOAD_HEADER, base64.urlsafe_b64encode(payload).decode().rstrip("=")),)


async def eventually(probe: Callable[[], Awaitable[bool]], limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if await probe():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


class Case:
    """Test-unique account and symbols, and the settings of risk instances filtered to that account."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:8].upper()
        self.account = f"acct-risk-{tag.lower()}"
        self.symbol = f"RK{tag}USDT"
        self.restricted = f"RX{tag}USDT"

    def settings(self, **overrides: object) -> RiskSettings:
        base: dict[str, object] = {
            "port": 0,
            "fills_subject": f"fills.{self.account}.>",
            "orders_subject": f"orders.{self.account}.>",
            "pnl_subject": f"pnl.{self.account}",
            "durable_prefix": "risk-test",
            "warmup_timeout_s": 5.0,
        }
        base.update(overrides)
        return RiskSettings(**base)  # type: ignore[arg-type]

    def risk(self, **overrides: object) -> Risk:
        settings = self.settings(**overrides)
        config = load_limits(settings.limits_file)
        config = type(config)(
            config.account_defaults,
            config.instruments,
            ComplianceConfig(restricted_symbols={self.restricted: "integration test restriction"}),
        )
        return compose(settings, config=config)


class Served:
    def __init__(self, risk: Risk, server: RunningServer, channel: grpc.aio.Channel) -> None:
        self.risk = risk
        self.server = server
        self.channel = channel
        self.stub = risk_pb2_grpc.RiskServiceStub(channel)

    async def close(self) -> None:
        await self.channel.close()
        await self.server.stop()


async def serve(risk: Risk) -> Served:
    registration = Registration(
        add_to_server=lambda server: risk_pb2_grpc.add_RiskServiceServicer_to_server(
            RiskServicer(risk.service), server
        ),
        service_names=["trade.risk.v1.RiskService"],
        on_start=[risk.start],
        on_stop=[risk.stop],
    )
    server = await start_server(risk.settings, registration)
    return Served(risk, server, grpc.aio.insecure_channel(f"127.0.0.1:{server.port}"))


@pytest.fixture
async def case() -> AsyncIterator[Case]:
    c = Case()
    yield c
    # The instances pushed this test's restriction into OPA's data: remove it.
    url = f"{RiskSettings().opa_url}/v1/data/risk_compliance/restricted_symbols/{c.restricted}"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http, http.delete(url) as resp:
        assert resp.status in (204, 404)


@pytest.fixture
async def served(case: Case) -> AsyncIterator[Served]:
    s = await serve(case.risk())
    yield s
    await s.close()


@pytest.fixture
async def bus() -> AsyncIterator[Bus]:
    bus = Bus(RiskSettings().nats_url, "test-risk")
    await bus.connect()
    await bus.ensure_streams([RISK])
    for spec in (FILLS, ORDERS):
        try:
            await bus.js.stream_info(spec.name)
        except Exception:
            await bus.js.add_stream(spec.config())
    yield bus
    await bus.close()


async def add_instrument(stub: risk_pb2_grpc.RiskServiceAsyncStub, symbol: str, **fields: object) -> None:
    limits = limits_pb2.InstrumentLimits(
        symbol=symbol,
        trading_enabled=True,
        price_band_bps=500,
        max_order_quantity=_dec("10"),
        max_position_quantity=_dec("20"),
        **fields,  # type: ignore[arg-type]
    )
    await stub.UpdateInstrumentLimits(
        risk_pb2.UpdateInstrumentLimitsRequest(symbol=symbol, limits=limits, reason="integration test listing"),
        metadata=manager_md(),
        timeout=5,
    )


def quote_event(symbol: str, bid: str, ask: str) -> md_events_pb2.MarketDataEvent:
    return md_events_pb2.MarketDataEvent(
        event_id=f"quote:{symbol}:{time.time_ns()}",
        publish_time_ns=time.time_ns(),
        quote=market_data_pb2.Quote(symbol=symbol, bid_price=_dec(bid), ask_price=_dec(ask)),
    )


async def publish_quote(bus: Bus, symbol: str, bid: str, ask: str) -> None:
    """One MD message of two quotes: a stale one (mid 50), then the current one, whose mid must win."""
    await bus.nc.publish(
        f"md.quote.{symbol}", md_message(quote_event(symbol, "49", "51"), quote_event(symbol, bid, ask))
    )


def check_request(case: Case, qty: str, price: str, symbol: str = "", **extra: str) -> risk_pb2.CheckOrderRequest:
    return risk_pb2.CheckOrderRequest(
        account_id=case.account,
        symbol=symbol or case.symbol,
        spec=order_pb2.OrderSpec(
            side=order_pb2.SIDE_BUY, order_type=order_pb2.ORDER_TYPE_LIMIT, quantity=_dec(qty), limit_price=_dec(price)
        ),
        **extra,
    )


async def with_mid(served: Served, bus: Bus, symbol: str, **fields: object) -> None:
    await add_instrument(served.stub, symbol, **fields)

    async def has_mid() -> bool:
        await publish_quote(bus, symbol, "99.5", "100.5")
        return served.risk.mids.mid(symbol, time.time_ns()) is not None

    await eventually(has_mid)


async def test_check_order_over_grpc_approves_and_rejects_with_every_reason(
    served: Served, bus: Bus, case: Case
) -> None:
    await with_mid(served, bus, case.symbol)
    ok = await served.stub.CheckOrder(check_request(case, "1", "100.2"), timeout=CHECK_DEADLINE_S)
    assert ok.approved and ok.check_id and ok.reference_price.value == "100"
    bad = await served.stub.CheckOrder(check_request(case, "11", "120"), timeout=CHECK_DEADLINE_S)
    assert not bad.approved
    assert {v.reason for v in bad.violations} == {R.ERROR_REASON_RISK_MAX_ORDER_QTY, R.ERROR_REASON_RISK_PRICE_BAND}
    unknown = await served.stub.CheckOrder(check_request(case, "1", "1", symbol="NOSUCHUSDT"), timeout=CHECK_DEADLINE_S)
    assert [v.reason for v in unknown.violations] == [R.ERROR_REASON_UNKNOWN_SYMBOL]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await served.stub.CheckOrder(check_request(case, "0", "100"), timeout=CHECK_DEADLINE_S)
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_mids_warm_from_the_last_quote_of_the_last_md_message(served: Served, bus: Bus, case: Case) -> None:
    await bus.ensure_streams([MARKET_DATA])
    stale, current = quote_event(case.symbol, "9", "11"), quote_event(case.symbol, "19", "21")
    await bus.publish(f"md.quote.{case.symbol}", md_message(stale, current), f"{stale.event_id}+2")
    await served.risk.feeds.warm_mids("MD", [case.symbol])
    assert served.risk.mids.mid(case.symbol, time.time_ns()) == 20


async def test_check_order_latency_is_well_inside_the_oms_deadline(served: Served, bus: Bus, case: Case) -> None:
    await with_mid(served, bus, case.symbol)
    timings = []
    for _ in range(40):
        t0 = time.perf_counter()
        await served.stub.CheckOrder(check_request(case, "0.01", "100"), timeout=CHECK_DEADLINE_S)
        timings.append(time.perf_counter() - t0)
    p50 = statistics.median(timings)
    assert p50 < 0.1, f"CheckOrder p50 {p50 * 1000:.1f} ms"


async def test_compliance_restriction_comes_from_opa(served: Served, bus: Bus, case: Case) -> None:
    await with_mid(served, bus, case.restricted, max_order_notional=_dec("1000000"))
    resp = await served.stub.CheckOrder(
        check_request(case, "1", "100", symbol=case.restricted), timeout=CHECK_DEADLINE_S
    )
    assert [v.reason for v in resp.violations] == [R.ERROR_REASON_RISK_COMPLIANCE_RESTRICTED_SYMBOL]
    assert "integration test restriction" in resp.violations[0].message


async def test_opa_unreachable_fails_closed(case: Case) -> None:
    s = await serve(case.risk(opa_url="http://127.0.0.1:9"))
    try:
        resp = await s.stub.CheckOrder(check_request(case, "1", "100", symbol="BTCUSDT"), timeout=CHECK_DEADLINE_S)
        assert not resp.approved
        assert R.ERROR_REASON_RISK_CHECK_UNAVAILABLE in [v.reason for v in resp.violations]
    finally:
        await s.close()


async def test_kill_switch_publishes_an_event_rejects_orders_and_survives_a_new_instance(
    served: Served, bus: Bus, case: Case
) -> None:
    subject = f"risk.killswitch.account.{case.account}"
    sub = await bus.js.subscribe(subject, ordered_consumer=True, deliver_policy=api.DeliverPolicy.NEW)
    try:
        engaged = await served.stub.EngageKillSwitch(
            risk_pb2.EngageKillSwitchRequest(
                scope=events_pb2.KILL_SWITCH_SCOPE_ACCOUNT, account_id=case.account, reason="runaway strategy"
            ),
            metadata=manager_md("u-kill"),
            timeout=5,
        )
        msg = await sub.next_msg(timeout=5)
    finally:
        await sub.unsubscribe()
    event = events_pb2.KillSwitchEvent.FromString(msg.data)
    assert msg.headers is not None and msg.headers["Nats-Msg-Id"] == engaged.event_id == event.event_id
    assert event.action == events_pb2.KILL_SWITCH_ACTION_ENGAGED and event.actor == "u-kill"
    resp = await served.stub.CheckOrder(check_request(case, "1", "100", symbol="BTCUSDT"), timeout=CHECK_DEADLINE_S)
    assert R.ERROR_REASON_RISK_KILL_SWITCH in [v.reason for v in resp.violations]

    fresh = await serve(case.risk())
    try:
        status = await fresh.stub.GetKillSwitchStatus(
            risk_pb2.GetKillSwitchStatusRequest(account_id=case.account), timeout=5
        )
        assert status.trading_halted and status.kill_switches[1].changed_by == "u-kill"
        released = await fresh.stub.ReleaseKillSwitch(
            risk_pb2.ReleaseKillSwitchRequest(
                scope=events_pb2.KILL_SWITCH_SCOPE_ACCOUNT, account_id=case.account, reason="fixed"
            ),
            metadata=manager_md(),
            timeout=5,
        )
        assert not released.kill_switch.engaged
    finally:
        await fresh.close()


async def test_update_limits_is_audited_on_risk_and_survives_a_new_instance(
    served: Served, bus: Bus, case: Case
) -> None:
    sub = await bus.js.subscribe("risk.limits.audit", ordered_consumer=True, deliver_policy=api.DeliverPolicy.NEW)
    try:
        updated = await served.stub.UpdateLimits(
            risk_pb2.UpdateLimitsRequest(
                account_id=case.account,
                limits=limits_pb2.AccountLimits(account_id=case.account, max_open_orders=1, max_orders_per_second=9),
                reason="onboarding",
            ),
            metadata=manager_md("u-limits"),
            timeout=5,
        )
        deadline = time.monotonic() + 5
        while True:
            msg = await sub.next_msg(timeout=max(deadline - time.monotonic(), 0.01))
            if msg.headers and msg.headers.get("Nats-Msg-Id") == updated.audit.audit_id:
                break
    finally:
        await sub.unsubscribe()
    audit = events_pb2.LimitChangeAudit.FromString(msg.data)
    assert audit.actor == "u-limits" and audit.account_id == case.account and audit.reason == "onboarding"
    assert audit.new_value.account.max_open_orders == 1 and not audit.HasField("old_value")

    fresh = await serve(case.risk())
    try:
        got = await fresh.stub.GetLimits(risk_pb2.GetLimitsRequest(account_id=case.account), timeout=5)
        assert got.account_limits.version == 1 and got.account_limits.updated_by == "u-limits"
        listed = await fresh.stub.ListLimitAudit(risk_pb2.ListLimitAuditRequest(account_id=case.account), timeout=5)
        assert [e.audit_id for e in listed.entries] == [updated.audit.audit_id]
    finally:
        await fresh.close()


def open_order_event(
    case: Case, order_id: str, version: int, quantity: str, leaves: str, limit: str = "99"
) -> oms_events_pb2.OrderEvent:
    """A well-formed journal event of an open buy order (the mesh's OMS reads it too, and ignores an order it never
    accepted)."""
    order = order_pb2.Order(
        order_id=order_id,
        account_id=case.account,
        symbol=case.symbol,
        spec=order_pb2.OrderSpec(
            side=order_pb2.SIDE_BUY,
            order_type=order_pb2.ORDER_TYPE_LIMIT,
            quantity=_dec(quantity),
            limit_price=_dec(limit),
        ),
        status=order_pb2.ORDER_STATUS_NEW,
        leaves_qty=_dec(leaves),
        version=version,
    )
    return oms_events_pb2.OrderEvent(
        event_id=f"{order_id}:{version}",
        order_version=version,
        order=order,
        acknowledged=oms_events_pb2.OrderAcknowledged(venue_order_id=f"V-{order_id}"),
    )


async def publish_fill(bus: Bus, case: Case, fill_id: str, qty: str) -> None:
    fill = fill_pb2.Fill(
        fill_id=fill_id,
        account_id=case.account,
        symbol=case.symbol,
        side=order_pb2.SIDE_BUY,
        quantity=_dec(qty),
        price=_dec("100"),
    )
    await bus.publish(f"fills.{case.account}.{case.symbol}", fill.SerializeToString(), fill.fill_id)


async def test_positions_and_open_orders_come_from_fills_and_orders_and_replay_on_start(
    served: Served, bus: Bus, case: Case
) -> None:
    await with_mid(served, bus, case.symbol)
    order_id = f"ord-{case.account}"
    event = open_order_event(case, order_id, version=2, quantity="4", leaves="4")
    await publish_fill(bus, case, f"fill-{case.account}", "15")
    await bus.publish(f"orders.{case.account}.{case.symbol}", event.SerializeToString(), event.event_id)

    async def caught_up() -> bool:
        return (
            len(served.risk.exposure.open_orders(case.account)) == 1
            and served.risk.exposure.position(case.account, case.symbol) == 15
        )

    await eventually(caught_up)
    # 15 + 4 open + 2 = 21 > 20; amending the open order from 4 to 5 gives 15 + 5 = 20.
    new = await served.stub.CheckOrder(check_request(case, "2", "100"), timeout=CHECK_DEADLINE_S)
    assert [v.reason for v in new.violations] == [R.ERROR_REASON_RISK_MAX_POSITION]
    amend = await served.stub.CheckOrder(
        check_request(case, "5", "100", amend_order_id=order_id), timeout=CHECK_DEADLINE_S
    )
    assert amend.approved

    fresh = case.risk()
    await fresh.start()
    try:
        assert fresh.exposure.position(case.account, case.symbol) == 15
        assert [o.order_id for o in fresh.exposure.open_orders(case.account)] == [order_id]
    finally:
        await fresh.stop()


async def test_a_second_running_instance_follows_changes_made_on_the_first(served: Served, case: Case) -> None:
    other = await serve(case.risk())
    try:
        await served.stub.EngageKillSwitch(
            risk_pb2.EngageKillSwitchRequest(
                scope=events_pb2.KILL_SWITCH_SCOPE_ACCOUNT, account_id=case.account, reason="halt everywhere"
            ),
            metadata=manager_md(),
            timeout=5,
        )
        await other.stub.UpdateLimits(
            risk_pb2.UpdateLimitsRequest(
                account_id=case.account,
                limits=limits_pb2.AccountLimits(account_id=case.account, max_open_orders=7),
                reason="from the other instance",
            ),
            metadata=manager_md(),
            timeout=5,
        )

        async def both_see_both() -> bool:
            return all(
                r.service.kill_switches.halted(case.account) is not None
                and r.service.limits.account(case.account).max_open_orders == 7
                for r in (served.risk, other.risk)
            )

        await eventually(both_see_both, limit_s=5)
        # The follower applied this instance's own change in stream order: released here, released there.
        await other.stub.ReleaseKillSwitch(
            risk_pb2.ReleaseKillSwitchRequest(
                scope=events_pb2.KILL_SWITCH_SCOPE_ACCOUNT, account_id=case.account, reason="resume"
            ),
            metadata=manager_md(),
            timeout=5,
        )

        async def released() -> bool:
            return served.risk.service.kill_switches.halted(case.account) is None

        await eventually(released, limit_s=5)
        assert other.risk.service.kill_switches.halted(case.account) is None
    finally:
        await other.close()


async def test_the_state_feeds_return_from_start_only_once_their_replay_caught_up(bus: Bus, case: Case) -> None:
    # A stream of the test's own: the OMS, exeq and questdb-writer read every orders.> subject of ORDERS.
    stream = StreamSpec(
        name=f"RISKTEST_{case.account.upper().replace('-', '_')}", subjects=(f"risktest.{case.account}.>",)
    )
    await bus.ensure_streams([stream])
    orders = 3000
    events = []
    for i in range(orders):
        order = order_pb2.Order(
            order_id=f"ord-{case.account}-{i}",
            account_id=case.account,
            symbol=case.symbol,
            spec=order_pb2.OrderSpec(
                side=order_pb2.SIDE_BUY,
                order_type=order_pb2.ORDER_TYPE_LIMIT,
                quantity=_dec("1"),
                limit_price=_dec("9"),
            ),
            status=order_pb2.ORDER_STATUS_NEW,
            leaves_qty=_dec("1"),
            version=1,
        )
        events.append(oms_events_pb2.OrderEvent(event_id=f"{order.order_id}:1", order_version=1, order=order))

    def feeds(exposure: ExposureBook, durable_prefix: str) -> NatsStateFeeds:
        feed = Feed(
            "orders",
            stream.name,
            f"risktest.{case.account}.>",
            api.DeliverPolicy.ALL,
            lambda data: apply_order_event(exposure, data),
        )
        return NatsStateFeeds(bus, [feed], MidBook(), f"risktest.{case.account}.quotes", durable_prefix, time.time_ns)

    try:
        for start in range(0, orders, 500):
            await asyncio.gather(
                *(
                    bus.publish(f"risktest.{case.account}.orders", e.SerializeToString(), e.event_id)
                    for e in events[start : start + 500]
                )
            )
        # A bound on the wait (tests only) lets start return while the replay is still under way...
        hurried_book = ExposureBook()
        hurried = feeds(hurried_book, "risk-test-hurried")
        await hurried.start(warmup_timeout_s=0.001)
        try:
            assert len(hurried_book.open_orders(case.account)) < orders
        finally:
            await hurried.stop()
        # ...by default it returns (and risk's server starts listening) only once every open order is known.
        patient_book = ExposureBook()
        patient = feeds(patient_book, "risk-test-patient")
        await patient.start()
        try:
            assert len(patient_book.open_orders(case.account)) == orders
        finally:
            await patient.stop()
    finally:
        await bus.js.delete_stream(stream.name)


async def test_a_restart_from_a_snapshot_reads_fills_and_orders_only_beyond_it_and_ends_identical(
    bus: Bus, case: Case
) -> None:
    async def publish_order(n: int, version: int, leaves: str) -> None:
        event = open_order_event(case, f"ord-{case.account}-{n}", version, "5", leaves, limit="9")
        await bus.publish(f"orders.{case.account}.{case.symbol}", event.SerializeToString(), event.event_id)

    for n in range(3):
        await publish_fill(bus, case, f"fill-{case.account}-{n}", "1")
        await publish_order(n, 2, "5")
    first = case.risk(snapshot_min_orders=1)
    name = first.snapshots.name if first.snapshots is not None else ""
    served = await serve(first)
    try:
        assert first.exposure.position(case.account, case.symbol) == 3
        assert len(first.exposure.open_orders(case.account)) == 3
    finally:
        await served.close()  # writes the snapshot
    try:
        # Beyond the snapshot: one more fill, and order 0 partly filled.
        await publish_fill(bus, case, f"fill-{case.account}-3", "2")
        await publish_order(0, 3, "2")
        resumed = await serve(case.risk(snapshot_min_orders=1))
        replayed = await serve(case.risk(snapshots=False))
        try:
            assert {k: v for k, v in resumed.risk.feeds.applied().items() if k != "pnl"} == {"fills": 1, "orders": 1}
            assert replayed.risk.feeds.applied()["orders"] == 4
            assert resumed.risk.exposure.contents()[0] == replayed.risk.exposure.contents()[0]
            assert set(resumed.risk.exposure.contents()[1]) == set(replayed.risk.exposure.contents()[1])
            assert resumed.risk.exposure.contents()[2] == replayed.risk.exposure.contents()[2]
            assert resumed.risk.exposure.position(case.account, case.symbol) == 5
            exposure = resumed.risk.exposure.open_exposure(case.account, case.symbol)
            assert exposure == replayed.risk.exposure.open_exposure(case.account, case.symbol)
            assert (exposure.count, exposure.buy_leaves) == (3, Decimal(12))
        finally:
            await resumed.close()
            await replayed.close()
    finally:
        with contextlib.suppress(Exception):
            await (await bus.js.object_store(SNAPSHOT_BUCKET)).delete(name)
