"""The OPA compliance adapter without a server: data documents, decision parsing, failing closed."""

from __future__ import annotations

import pytest

from services.risk.adapters.opa_compliance import OpaCompliance, _violations, data_documents
from services.risk.domain.model import ComplianceConfig, ComplianceInput, Reason, Side, TradingWindow
from services.risk.domain.ports import ComplianceUnavailable


def test_each_compliance_entry_is_its_own_document_so_instances_do_not_clobber_each_other() -> None:
    config = ComplianceConfig(
        restricted_symbols={"GME/USD": "halted"},
        account_restricted_symbols={"acct-1": ("BTCUSDT",)},
        trading_windows={"ETHUSDT": TradingWindow(60, 120, (1, 2))},
    )
    assert data_documents(config) == [
        ("risk_compliance/restricted_symbols/GME%2FUSD", {"reason": "halted"}),
        ("risk_compliance/account_restrictions/acct-1", {"symbols": ["BTCUSDT"]}),
        ("risk_compliance/trading_windows/ETHUSDT", {"start_minute": 60, "end_minute": 120, "weekdays": [1, 2]}),
    ]


def test_decision_violations_are_parsed_sorted() -> None:
    answer = {
        "result": {
            "allowed": False,
            "violations": [
                {"reason": Reason.TRADING_WINDOW, "message": "closed"},
                {"reason": Reason.RESTRICTED_SYMBOL, "message": "restricted"},
            ],
        }
    }
    assert [v.reason for v in _violations(answer)] == [Reason.RESTRICTED_SYMBOL, Reason.TRADING_WINDOW]
    assert _violations({"result": {"allowed": True, "violations": []}}) == []


def test_policy_not_loaded_is_unavailable() -> None:
    with pytest.raises(ComplianceUnavailable):
        _violations({})


async def test_unreachable_opa_raises_unavailable_quickly() -> None:
    opa = OpaCompliance("http://127.0.0.1:9", ComplianceConfig(), timeout_s=0.2, policy_text="package x")
    try:
        with pytest.raises(ComplianceUnavailable):
            await opa.evaluate(ComplianceInput("a", "BTCUSDT", Side.BUY, "", 1))
    finally:
        await opa.close()
