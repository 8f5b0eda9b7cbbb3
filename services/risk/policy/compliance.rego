# Trade2026 pre-trade compliance, queried by the risk service for every
# CheckOrder at data.trade.compliance.decision (loaded by risk at start-up as
# policy id "trade_compliance").
#
# Input (built by services/risk/domain/model.py ComplianceInput):
#   input.account    account id of the order
#   input.symbol     instrument symbol
#   input.side       "buy" | "sell"
#   input.strategy   strategy id ("" when none)
#   input.time_ns    time of the check, ns since the Unix epoch
#
# Data (pushed by risk from its limits TOML, one document per entry):
#   data.risk_compliance.restricted_symbols[symbol]   {"reason": "..."}
#   data.risk_compliance.account_restrictions[account] {"symbols": [...]}
#   data.risk_compliance.trading_windows[symbol]
#       {"start_minute": 0-1440, "end_minute": 0-1440, "weekdays": [1..7]}
#       trading allowed on those ISO weekdays (1 = Monday) from start_minute
#       (inclusive) to end_minute (exclusive), minutes of the day in UTC.
#       A symbol without a window trades at any time.
#
# The decision lists every violation with a machine-readable reason
# (trade.type.v1.ErrorReason without the ERROR_REASON_ prefix).
package trade.compliance

weekday_numbers := {
	"Monday": 1, "Tuesday": 2, "Wednesday": 3, "Thursday": 4,
	"Friday": 5, "Saturday": 6, "Sunday": 7,
}

default allow := false

allow if count(violations) == 0

decision := {"allowed": allow, "violations": [v | some v in violations]}

violations contains {
	"reason": "RISK_COMPLIANCE_RESTRICTED_SYMBOL",
	"message": sprintf("%s is on the restricted list: %s", [input.symbol, object.get(entry, "reason", "restricted")]),
} if {
	entry := data.risk_compliance.restricted_symbols[input.symbol]
}

violations contains {
	"reason": "RISK_COMPLIANCE_RESTRICTED_SYMBOL",
	"message": sprintf("%s is restricted for account %s", [input.symbol, input.account]),
} if {
	input.symbol in object.get(data.risk_compliance.account_restrictions, [input.account, "symbols"], [])
}

violations contains {
	"reason": "RISK_COMPLIANCE_TRADING_WINDOW",
	"message": sprintf("%s trades only on ISO weekdays %v between minute %d and %d of the day (UTC)", [
		input.symbol, object.get(window, "weekdays", []),
		object.get(window, "start_minute", 0), object.get(window, "end_minute", 1440),
	]),
} if {
	window := data.risk_compliance.trading_windows[input.symbol]
	not inside(window)
}

violations contains {
	"reason": "RISK_CHECK_UNAVAILABLE",
	"message": "compliance input is incomplete: account, symbol and time_ns are required",
} if {
	not complete_input
}

complete_input if {
	is_string(input.account)
	input.account != ""
	is_string(input.symbol)
	input.symbol != ""
	is_number(input.time_ns)
}

inside(window) if {
	weekday_numbers[time.weekday(input.time_ns)] in object.get(window, "weekdays", [1, 2, 3, 4, 5, 6, 7])
	[hour, minute, _] := time.clock(input.time_ns)
	minute_of_day := (hour * 60) + minute
	minute_of_day >= object.get(window, "start_minute", 0)
	minute_of_day < object.get(window, "end_minute", 1440)
}
