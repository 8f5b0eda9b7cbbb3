"""Kill-switch semantics and audited limit changes of the risk service (in-memory, fake publisher)."""

from __future__ import annotations

import dataclasses

import pytest

from services.risk.domain.killswitch import KillSwitchBook
from services.risk.domain.limits import AuditQuery, LimitsBook
from services.risk.domain.model import AccountLimits, KillSwitchScope, Reason
from services.runtime.errors import DomainError, ErrorKind
from tests.unit.risk_support import BTC, DEFAULTS, D, World, limit


async def test_engaging_an_account_kill_switch_publishes_an_event_and_rejects_its_orders() -> None:
    world = World()
    state, event_id = await world.service.set_kill_switch("u-rm", KillSwitchScope.ACCOUNT, "acct-1", "halt", True)
    assert state.engaged and state.changed_by == "u-rm" and state.reason == "halt"
    [event] = world.events.kill_switches
    assert event.event_id == event_id and event.engaged and event.actor == "u-rm"
    assert event.subject_suffix == "account.acct-1"
    assert (await world.service.check(limit(account="acct-1"))).reasons == [Reason.KILL_SWITCH]
    assert (await world.service.check(limit(account="acct-2"))).approved


async def test_global_kill_switch_halts_every_account_and_account_release_does_not_lift_it() -> None:
    world = World()
    await world.service.set_kill_switch("u-rm", KillSwitchScope.GLOBAL, "", "market halt", True)
    assert world.events.kill_switches[0].subject_suffix == "global"
    await world.service.set_kill_switch("u-rm", KillSwitchScope.ACCOUNT, "acct-2", "resume", False)
    assert (await world.service.check(limit(account="acct-2"))).reasons == [Reason.KILL_SWITCH]
    switches, halted = world.service.kill_switch_status("acct-2")
    assert halted and switches[0].scope is KillSwitchScope.GLOBAL and switches[0].engaged
    await world.service.set_kill_switch("u-rm", KillSwitchScope.GLOBAL, "", "over", False)
    assert (await world.service.check(limit(account="acct-2"))).approved
    assert world.service.kill_switch_status("")[1] is False


async def test_engage_is_idempotent_and_release_resumes_trading() -> None:
    world = World()
    await world.service.set_kill_switch("u-rm", KillSwitchScope.ACCOUNT, "acct-1", "one", True)
    await world.service.set_kill_switch("u-rm", KillSwitchScope.ACCOUNT, "acct-1", "two", True)
    assert world.service.kill_switches.account_switch("acct-1").engaged
    switches, halted = world.service.kill_switch_status("")
    assert [s.account_id for s in switches] == ["", "acct-1"] and not halted
    state, _ = await world.service.set_kill_switch("u-admin", KillSwitchScope.ACCOUNT, "acct-1", "ok", False)
    assert not state.engaged and state.changed_by == "u-admin"
    assert [e.engaged for e in world.events.kill_switches] == [True, True, False]
    assert (await world.service.check(limit())).approved


async def test_kill_switch_state_is_rebuilt_from_its_events_in_order() -> None:
    world = World()
    await world.service.set_kill_switch("rm", KillSwitchScope.ACCOUNT, "acct-1", "a", True)
    await world.service.set_kill_switch("rm", KillSwitchScope.ACCOUNT, "acct-1", "b", False)
    await world.service.set_kill_switch("rm", KillSwitchScope.ACCOUNT, "acct-3", "c", True)
    fresh = KillSwitchBook()
    for event in [*world.events.kill_switches, *world.events.kill_switches]:  # replayed twice: no change
        fresh.apply(event)
    assert fresh.halted("acct-1") is None
    assert fresh.halted("acct-3") is not None and fresh.halted("acct-3").reason == "c"  # type: ignore[union-attr]


async def test_kill_switch_not_recorded_when_publishing_fails() -> None:
    world = World()
    world.events.fail = True
    with pytest.raises(RuntimeError):
        await world.service.set_kill_switch("rm", KillSwitchScope.GLOBAL, "", "x", True)
    assert not world.service.kill_switches.global_switch.engaged


@pytest.mark.parametrize(
    ("scope", "account", "reason", "field"),
    [
        (KillSwitchScope.ACCOUNT, "", "r", "account_id"),
        (KillSwitchScope.GLOBAL, "acct-1", "r", "account_id"),
        (KillSwitchScope.GLOBAL, "", "", "reason"),
        (KillSwitchScope.GLOBAL, "", "x" * 501, "reason"),
    ],
)
async def test_kill_switch_request_validation(scope: KillSwitchScope, account: str, reason: str, field: str) -> None:
    with pytest.raises(DomainError) as err:
        await World().service.set_kill_switch("rm", scope, account, reason, True)
    assert err.value.kind is ErrorKind.INVALID_ARGUMENT
    assert [v.field for v in err.value.violations] == [field]


async def test_update_limits_is_audited_with_old_and_new_and_bumps_the_version() -> None:
    world = World()
    assert world.service.get_limits("acct-1", [])[0].is_default
    new = AccountLimits("acct-1", max_order_notional=D("100"), max_open_orders=2)
    first = await world.service.update_account_limits("u-rm", new, "tighten")
    assert first.old_account is None  # the defaults were in force
    assert first.new_account is not None and first.new_account.version == 1
    assert first.new_account.updated_by == "u-rm" and not first.new_account.is_default
    second = await world.service.update_account_limits("u-admin", dataclasses.replace(new, max_open_orders=3), "more")
    assert second.old_account == first.new_account
    assert second.new_account is not None and second.new_account.version == 2
    assert world.events.limit_changes == [first, second]
    limits, _ = world.service.get_limits("acct-1", [])
    assert limits.max_open_orders == 3 and limits.version == 2
    assert (await world.service.check(limit("1", "50000"))).reasons == [Reason.MAX_NOTIONAL]


async def test_update_limits_with_a_stale_expected_version_is_aborted() -> None:
    world = World()
    await world.service.update_account_limits("rm", AccountLimits("acct-1"), "one")
    with pytest.raises(DomainError) as err:
        await world.service.update_account_limits("rm", AccountLimits("acct-1"), "two", expected_version=7)
    assert err.value.reason == "VERSION_CONFLICT" and err.value.kind is ErrorKind.ABORTED
    assert len(world.events.limit_changes) == 1
    ok = await world.service.update_account_limits("rm", AccountLimits("acct-1"), "two", expected_version=1)
    assert ok.new_account is not None and ok.new_account.version == 2


async def test_update_limits_needs_a_reason() -> None:
    with pytest.raises(DomainError) as err:
        await World().service.update_account_limits("rm", AccountLimits("acct-1"), "")
    assert err.value.kind is ErrorKind.INVALID_ARGUMENT


async def test_instrument_limits_update_is_audited_and_can_add_an_instrument() -> None:
    world = World()
    change = await world.service.update_instrument_limits("rm", dataclasses.replace(BTC, trading_enabled=False), "halt")
    assert change.old_instrument == BTC and change.new_instrument is not None
    assert (await world.service.check(limit())).reasons == [Reason.INSTRUMENT_DISABLED]
    added = await world.service.update_instrument_limits("rm", dataclasses.replace(BTC, symbol="NEWUSDT"), "list")
    assert added.old_instrument is None
    assert [i.symbol for i in world.service.get_limits("a", ["NEWUSDT"])[1]] == ["NEWUSDT"]


async def test_limits_are_rebuilt_from_the_audit_trail() -> None:
    world = World()
    await world.service.update_account_limits("rm", AccountLimits("acct-1", max_open_orders=1), "a")
    await world.service.update_instrument_limits("rm", dataclasses.replace(BTC, price_band_bps=10), "b")
    fresh = LimitsBook(DEFAULTS, [BTC])
    for change in world.events.limit_changes:
        fresh.apply(change)
    assert fresh.account("acct-1") == world.limits.account("acct-1")
    assert fresh.instrument("BTCUSDT") == world.limits.instrument("BTCUSDT")
    assert len(fresh.audit(AuditQuery())[0]) == 2


async def test_audit_is_listed_newest_first_filtered_and_paginated() -> None:
    world = World()
    for i in range(5):
        world.clock.advance(1)
        await world.service.update_account_limits("rm", AccountLimits("acct-1", max_open_orders=i + 1), f"r{i}")
    await world.service.update_instrument_limits("rm", BTC, "inst")
    page1, token = world.service.list_audit(AuditQuery(account_id="acct-1", page_size=2))
    assert [c.reason for c in page1] == ["r4", "r3"] and token
    page2, token2 = world.service.list_audit(AuditQuery(account_id="acct-1", page_size=2, page_token=token))
    page3, token3 = world.service.list_audit(AuditQuery(account_id="acct-1", page_size=2, page_token=token2))
    assert [c.reason for c in page2 + page3] == ["r2", "r1", "r0"] and token3 == ""
    assert [c.reason for c in world.service.list_audit(AuditQuery(symbol="BTCUSDT"))[0]] == ["inst"]
    assert len(world.service.list_audit(AuditQuery())[0]) == 6


def test_malformed_audit_page_token_is_invalid_argument() -> None:
    with pytest.raises(DomainError) as err:
        World().service.list_audit(AuditQuery(page_token="garbage"))
    assert err.value.reason == "INVALID_PAGE_TOKEN"
