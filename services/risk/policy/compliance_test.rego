package trade.compliance_test

import data.trade.compliance

# 2025-11-24 is a Monday; 14:30 UTC.
monday_1430 := 1764000000000000000 - (((1764000000 % 86400) - 52200) * 1000000000)

saturday_1430 := monday_1430 + ((5 * 86400) * 1000000000)

monday_0700 := monday_1430 - ((450 * 60) * 1000000000)

cfg := {
	"restricted_symbols": {"GMEUSDT": {"reason": "under investigation"}},
	"account_restrictions": {"acct-insider": {"symbols": ["BTCUSDT"]}},
	"trading_windows": {"ETHUSDT": {"start_minute": 480, "end_minute": 1020, "weekdays": [1, 2, 3, 4, 5]}},
}

order(account, symbol, t) := {"account": account, "symbol": symbol, "side": "buy", "strategy": "", "time_ns": t}

reasons(inp) := {v.reason | some v in compliance.violations with input as inp with data.risk_compliance as cfg}

test_clock_fixture_is_monday_1430 if {
	time.weekday(monday_1430) == "Monday"
	time.clock(monday_1430) == [14, 30, 0]
}

test_unrestricted_symbol_allowed if {
	compliance.allow with input as order("acct-1", "BTCUSDT", monday_1430) with data.risk_compliance as cfg
	count(reasons(order("acct-1", "BTCUSDT", monday_1430))) == 0
}

test_restricted_symbol_denied if {
	reasons(order("acct-1", "GMEUSDT", monday_1430)) == {"RISK_COMPLIANCE_RESTRICTED_SYMBOL"}
	not compliance.allow with input as order("acct-1", "GMEUSDT", monday_1430) with data.risk_compliance as cfg
}

test_account_restriction_denies_only_that_account if {
	reasons(order("acct-insider", "BTCUSDT", monday_1430)) == {"RISK_COMPLIANCE_RESTRICTED_SYMBOL"}
	count(reasons(order("acct-other", "BTCUSDT", monday_1430))) == 0
}

test_inside_trading_window_allowed if {
	count(reasons(order("acct-1", "ETHUSDT", monday_1430))) == 0
}

test_outside_trading_hours_denied if {
	reasons(order("acct-1", "ETHUSDT", monday_0700)) == {"RISK_COMPLIANCE_TRADING_WINDOW"}
}

test_outside_trading_days_denied if {
	reasons(order("acct-1", "ETHUSDT", saturday_1430)) == {"RISK_COMPLIANCE_TRADING_WINDOW"}
}

test_incomplete_input_denied if {
	reasons({"symbol": "BTCUSDT", "time_ns": monday_1430}) == {"RISK_CHECK_UNAVAILABLE"}
	not compliance.allow with input as {"account": "a", "symbol": "BTCUSDT"} with data.risk_compliance as cfg
}

test_no_config_allows_everything if {
	compliance.allow with input as order("acct-1", "GMEUSDT", monday_1430) with data.risk_compliance as {}
}

test_decision_lists_every_violation if {
	d := compliance.decision with input as order("acct-insider", "BTCUSDT", monday_0700) with data.risk_compliance as {
		"account_restrictions": {"acct-insider": {"symbols": ["BTCUSDT"]}},
		"trading_windows": {"BTCUSDT": {"start_minute": 480, "end_minute": 1020}},
	}
	d.allowed == false
	count(d.violations) == 2
}
