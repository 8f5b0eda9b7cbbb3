package trade.authz_test

import data.trade.authz

# ---------------------------------------------------------------- fixtures

now := 1764000000

revocation := {
	"loaded": true,
	"jtis": {"jti-revoked": now + 900},
	"subjects": {"u-reset": now + 60, "u-old-reset": now - 60},
}

restricted := {"restricted": ["GME-USD"]}

claims_for(sub, roles, accounts) := {
	"iss": "trade2026-authn",
	"aud": ["trade2026-api"],
	"sub": sub,
	"name": concat("", ["user-", sub]),
	"roles": roles,
	"accounts": accounts,
	"jti": concat("", ["jti-", sub]),
	"iat": now,
	"exp": now + 900,
	"typ": "access",
}

viewer := claims_for("u-viewer", ["viewer"], ["ACC-1"])

trader := claims_for("u-trader", ["trader"], ["ACC-1", "ACC-2"])

risk_manager := claims_for("u-risk", ["risk_manager"], [])

admin := claims_for("u-admin", ["admin"], [])

# A gRPC call with verified JWT claims, as the plugin renders it.
call(path, claims, body) := {
	"attributes": {
		"metadataContext": {"filterMetadata": {"envoy.filters.http.jwt_authn": {"jwt_payload": claims}}},
		"request": {"http": {
			"method": "POST",
			"path": path,
			"headers": {"content-type": "application/grpc"},
		}},
	},
	"parsed_path": split(trim_prefix(path, "/"), "/"),
	"parsed_body": body,
	"truncated_body": false,
}

# A gRPC call without a token (no jwt_authn metadata).
anonymous(path, body) := {
	"attributes": {"request": {"http": {
		"method": "POST",
		"path": path,
		"headers": {"content-type": "application/grpc"},
	}}},
	"parsed_path": split(trim_prefix(path, "/"), "/"),
	"parsed_body": body,
	"truncated_body": false,
}

allowed(inp) if {
	authz.allow with input as inp
		with data.revocation as revocation
		with data.instruments as restricted
}

decision(inp) := d if {
	d := authz.result with input as inp
		with data.revocation as revocation
		with data.instruments as restricted
}

login := "/trade.authn.v1.AuthnService/Login"

whoami := "/trade.authn.v1.AuthnService/WhoAmI"

create_user := "/trade.authn.v1.AuthnService/CreateUser"

create_api_key := "/trade.authn.v1.AuthnService/CreateApiKey"

submit_order := "/trade.oms.v1.OmsService/SubmitOrder"

cancel_order := "/trade.oms.v1.OmsService/CancelOrder"

engage_kill_switch := "/trade.risk.v1.RiskService/EngageKillSwitch"

order_body(account, symbol) := {"accountId": account, "symbol": symbol, "clientOrderId": "c-1", "quantity": "5"}

# ---------------------------------------------------------------- public RPCs

test_public_authn_rpcs_allowed_without_token if {
	allowed(anonymous(login, {"username": "alice"}))
	allowed(anonymous("/trade.authn.v1.AuthnService/Refresh", {}))
	allowed(anonymous("/trade.authn.v1.AuthnService/GetJwks", {}))
}

test_public_authn_rpc_allowed_with_token if {
	allowed(call(login, viewer, {}))
}

test_non_public_authn_rpc_denied_without_token if {
	not allowed(anonymous(whoami, {}))
	d := decision(anonymous(whoami, {}))
	d.allowed == false
	d.http_status == 401
	d.headers["x-trade-authz-reason"] == "unauthenticated"
}

test_health_and_reflection_allowed_without_token if {
	allowed(anonymous("/grpc.health.v1.Health/Check", {}))
	allowed(anonymous("/grpc.health.v1.Health/Watch", {}))
	allowed(anonymous("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", null))
	allowed(anonymous("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", null))
}

test_public_service_lookalike_paths_denied if {
	not allowed(anonymous("/grpc.health.v1.HealthX/Check", {}))
	not allowed(anonymous("/grpc.health.v1.Health/", {}))
	not allowed(anonymous("/grpc.health.v1.Health/Check/extra", {}))

	# the plugin strips the query from parsed_path; the raw path must still match exactly
	with_query := object.union(anonymous("/grpc.health.v1.Health/Check?x=1", {}), {"parsed_path": ["grpc.health.v1.Health", "Check"]})
	not allowed(with_query)
	not allowed(anonymous("/grpc.health.v2.Health/Check", {}))
}

test_public_allowed_even_before_revocation_loaded if {
	authz.allow with input as anonymous(login, {}) with data.revocation as {}
	authz.allow with input as anonymous("/grpc.health.v1.Health/Check", {}) with data.revocation as {}
}

test_public_result_has_no_identity_headers if {
	d := decision(anonymous(login, {}))
	d.allowed == true
	d.headers == {}
	"x-trade-user-id" in d.request_headers_to_remove
}

# ---------------------------------------------------------------- authentication

test_authenticated_any_role_allowed_whoami if {
	allowed(call(whoami, viewer, {}))
	allowed(call(whoami, trader, {}))
	allowed(call(whoami, risk_manager, {}))
	allowed(call(whoami, admin, {}))
	allowed(call("/trade.authn.v1.AuthnService/Logout", viewer, {}))
}

test_reason_for_allowed_call if {
	r := authz.reason with input as call(whoami, viewer, {}) with data.revocation as revocation
	r == "allowed"
}

test_allowed_result_carries_identity_headers if {
	d := decision(call(whoami, trader, {}))
	d.allowed == true
	d.headers["x-trade-user-id"] == "u-trader"
	d.headers["x-trade-user-name"] == "user-u-trader"
	d.headers["x-trade-roles"] == "trader"
	d.headers["x-trade-accounts"] == "ACC-1,ACC-2"
	d.request_headers_to_remove == []
}

test_no_claims_denied if {
	not allowed(anonymous(create_user, {}))
	not allowed(anonymous(submit_order, order_body("ACC-1", "BTC-USD")))
}

test_revocation_not_loaded_denied if {
	inp := call(whoami, admin, {})
	not authz.allow with input as inp with data.revocation as {}
	not authz.allow with input as inp with data.revocation as {"loaded": false, "jtis": {}, "subjects": {}}
	d := authz.result with input as inp with data.revocation as {}
	d.http_status == 503
	d.headers["x-trade-authz-reason"] == "authz_data_not_loaded"
}

test_revocation_loaded_allowed if {
	authz.allow with input as call(whoami, admin, {}) with data.revocation as {"loaded": true}
}

test_revoked_jti_denied if {
	c := object.union(admin, {"jti": "jti-revoked"})
	not allowed(call(whoami, c, {}))
	d := decision(call(whoami, c, {}))
	d.http_status == 401
	d.headers["x-trade-authz-reason"] == "token_revoked"
}

test_subject_not_before_denied if {
	c := claims_for("u-reset", ["admin"], [])
	not allowed(call(whoami, c, {}))
	d := decision(call(whoami, c, {}))
	d.http_status == 401
	d.headers["x-trade-authz-reason"] == "subject_revoked"
}

test_subject_not_before_passed_allowed if {
	# issued after the subject's not-before
	allowed(call(whoami, claims_for("u-old-reset", ["admin"], []), {}))

	# issued exactly at the not-before
	allowed(call(whoami, object.union(claims_for("u-reset", ["admin"], []), {"iat": now + 60}), {}))
}

test_refresh_token_used_as_access_denied if {
	c := object.union(admin, {"typ": "refresh"})
	not allowed(call(whoami, c, {}))
	d := decision(call(whoami, c, {}))
	d.http_status == 401
	d.headers["x-trade-authz-reason"] == "invalid_token"
}

test_malformed_claims_denied if {
	not allowed(call(whoami, object.remove(admin, ["typ"]), {}))
	not allowed(call(whoami, object.union(admin, {"iss": "someone-else"}), {}))
	not allowed(call(whoami, object.remove(admin, ["sub"]), {}))
	not allowed(call(whoami, object.union(admin, {"sub": ""}), {}))
	not allowed(call(whoami, object.remove(admin, ["jti"]), {}))
	not allowed(call(whoami, object.union(admin, {"jti": ""}), {}))
	not allowed(call(whoami, object.remove(admin, ["iat"]), {}))
	not allowed(call(whoami, object.union(admin, {"roles": "admin"}), {}))
	not allowed(call(whoami, object.remove(admin, ["roles"]), {}))
}

# ---------------------------------------------------------------- roles

test_unknown_method_denied if {
	not allowed(call("/trade.oms.v1.OmsService/DropAllTables", admin, {}))
	not allowed(call("/trade.authn.v1.AuthnService/whoami", admin, {}))
	not allowed(call("/trade.authn.v1.AuthnService/WhoAmI/", admin, {}))
	not allowed(call("/not.a.Service/Method", admin, {}))
	d := decision(call("/trade.oms.v1.OmsService/DropAllTables", admin, {}))
	d.http_status == 403
	d.headers["x-trade-authz-reason"] == "unknown_method"
}

test_admin_allowed_user_management if {
	allowed(call(create_user, admin, {"username": "bob"}))
	allowed(call("/trade.authn.v1.AuthnService/SetUserRoles", admin, {"userId": "u-1"}))
	allowed(call("/trade.authn.v1.AuthnService/RotateSigningKeys", admin, {}))
	allowed(call("/trade.authn.v1.AuthnService/RevokeToken", admin, {"tokenId": "x"}))
	allowed(call("/trade.authn.v1.AuthnService/ListUsers", admin, {}))
}

test_non_admin_denied_user_management if {
	not allowed(call(create_user, viewer, {"username": "bob"}))
	not allowed(call(create_user, trader, {"username": "bob"}))
	not allowed(call(create_user, risk_manager, {"username": "bob"}))
	not allowed(call("/trade.authn.v1.AuthnService/SetUserRoles", trader, {"userId": "u-trader"}))
	not allowed(call("/trade.authn.v1.AuthnService/RevokeToken", risk_manager, {"tokenId": "x"}))
	d := decision(call(create_user, viewer, {}))
	d.http_status == 403
	d.headers["x-trade-authz-reason"] == "role_not_permitted"
	d.body == "trade-authz: permission denied (role_not_permitted)"
}

test_unknown_role_denied if {
	not allowed(call(whoami, claims_for("u-x", ["superuser"], []), {}))
	not allowed(call(whoami, claims_for("u-x", [], []), {}))
}

# ---------------------------------------------------------------- self-service (user_field)

test_self_service_own_user_allowed if {
	allowed(call(create_api_key, trader, {}))
	allowed(call(create_api_key, trader, {"label": "bot"}))
	allowed(call(create_api_key, trader, {"userId": "u-trader"}))
	allowed(call("/trade.authn.v1.AuthnService/ListApiKeys", viewer, {}))
	allowed(call("/trade.authn.v1.AuthnService/RevokeApiKey", viewer, {"userId": "u-viewer", "keyId": "k"}))
}

test_self_service_other_user_denied if {
	not allowed(call(create_api_key, trader, {"userId": "u-admin"}))
	not allowed(call("/trade.authn.v1.AuthnService/ListApiKeys", risk_manager, {"userId": "u-trader"}))
	not allowed(call("/trade.authn.v1.AuthnService/RevokeApiKey", viewer, {"userId": "u-trader", "keyId": "k"}))
	d := decision(call(create_api_key, trader, {"userId": "u-admin"}))
	d.headers["x-trade-authz-reason"] == "user_not_permitted"
}

test_self_service_admin_any_user_allowed if {
	allowed(call(create_api_key, admin, {"userId": "u-trader"}))
	allowed(call("/trade.authn.v1.AuthnService/RevokeApiKey", admin, {"userId": "u-viewer", "keyId": "k"}))
}

test_self_service_without_decoded_body_denied if {
	# compressed or undecodable bodies must not look like "empty userId = self"
	not allowed(call(create_api_key, trader, null))
	inp := object.union(call(create_api_key, trader, {}), {"truncated_body": true})
	not allowed(inp)
	d := decision(call(create_api_key, trader, null))
	d.headers["x-trade-authz-reason"] == "request_body_unavailable"
}

# ---------------------------------------------------------------- account ownership

test_trader_own_account_allowed if {
	allowed(call(submit_order, trader, order_body("ACC-1", "BTC-USD")))
	allowed(call(submit_order, trader, order_body("ACC-2", "BTC-USD")))
	allowed(call(cancel_order, trader, {"accountId": "ACC-1", "orderId": "o-1"}))
}

test_trader_other_account_denied if {
	not allowed(call(submit_order, trader, order_body("ACC-9", "BTC-USD")))
	not allowed(call(cancel_order, trader, {"accountId": "ACC-9", "orderId": "o-1"}))
	d := decision(call(submit_order, trader, order_body("ACC-9", "BTC-USD")))
	d.http_status == 403
	d.headers["x-trade-authz-reason"] == "account_not_permitted"
}

test_missing_account_id_denied if {
	not allowed(call(submit_order, trader, {"symbol": "BTC-USD", "clientOrderId": "c-1"}))
	not allowed(call("/trade.oms.v1.OmsService/ListOrders", viewer, {}))
	not allowed(call(submit_order, trader, object.union(order_body("", "BTC-USD"), {"accountId": 7})))
}

test_account_scoped_without_decoded_body_denied if {
	not allowed(call(submit_order, trader, null))
	not allowed(object.union(call(submit_order, trader, order_body("ACC-1", "BTC-USD")), {"truncated_body": true}))
	d := decision(call(submit_order, trader, null))
	d.headers["x-trade-authz-reason"] == "request_body_unavailable"
}

test_viewer_reads_own_account_allowed if {
	allowed(call("/trade.oms.v1.OmsService/ListOrders", viewer, {"accountId": "ACC-1"}))
	allowed(call("/trade.ptrc.v1.PtrcService/ListPositions", viewer, {"accountId": "ACC-1"}))
	allowed(call("/trade.pnl.v1.PnlService/StreamPnl", viewer, {"accountId": "ACC-1"}))
}

test_viewer_reads_other_account_denied if {
	not allowed(call("/trade.oms.v1.OmsService/ListOrders", viewer, {"accountId": "ACC-2"}))
	not allowed(call("/trade.ptrc.v1.PtrcService/ListPositions", viewer, {"accountId": "ACC-2"}))
}

test_viewer_cannot_trade if {
	not allowed(call(submit_order, viewer, order_body("ACC-1", "BTC-USD")))
	not allowed(call(cancel_order, viewer, {"accountId": "ACC-1", "orderId": "o-1"}))
}

test_risk_manager_any_account_allowed if {
	allowed(call("/trade.oms.v1.OmsService/ListOrders", risk_manager, {"accountId": "ACC-9"}))
	allowed(call("/trade.oms.v1.OmsService/ListOrders", risk_manager, {}))
	allowed(call(cancel_order, risk_manager, {"accountId": "ACC-9", "orderId": "o-1"}))
	allowed(call("/trade.oms.v1.OmsService/CancelAllOrders", risk_manager, {"accountId": "ACC-9"}))
}

test_risk_manager_cannot_submit_orders if {
	not allowed(call(submit_order, risk_manager, order_body("ACC-9", "BTC-USD")))
	not allowed(call("/trade.oms.v1.OmsService/AmendOrder", risk_manager, order_body("ACC-9", "BTC-USD")))
}

test_account_override_needs_a_granted_role if {
	# risk_manager lifts the account check only on methods risk_manager may call:
	# a trader who is also risk_manager still trades only their own accounts.
	c := claims_for("u-both", ["trader", "risk_manager"], ["ACC-1"])
	allowed(call(submit_order, c, order_body("ACC-1", "BTC-USD")))
	not allowed(call(submit_order, c, order_body("ACC-9", "BTC-USD")))
	allowed(call(cancel_order, c, {"accountId": "ACC-9", "orderId": "o-1"}))
}

test_admin_any_account_allowed if {
	allowed(call(submit_order, admin, order_body("ACC-9", "BTC-USD")))
	allowed(call("/trade.exeq.v1.ExeqService/SubmitParentOrder", admin, order_body("ACC-9", "BTC-USD")))
}

# ---------------------------------------------------------------- restricted instruments

test_restricted_symbol_denied if {
	not allowed(call(submit_order, trader, order_body("ACC-1", "GME-USD")))
	not allowed(call(submit_order, trader, order_body("ACC-1", "gme-usd")))
	not allowed(call("/trade.exeq.v1.ExeqService/SubmitParentOrder", trader, order_body("ACC-1", "GME-USD")))
	not allowed(call("/trade.marketdata.v1.MarketDataService/GetSnapshot", viewer, {"symbol": "GME-USD"}))
	not allowed(call("/trade.marketdata.v1.MarketDataService/StreamQuotes", viewer, {"symbols": ["BTC-USD", "GME-USD"]}))
	d := decision(call(submit_order, trader, order_body("ACC-1", "GME-USD")))
	d.http_status == 403
	d.headers["x-trade-authz-reason"] == "instrument_restricted"
}

test_unrestricted_symbol_allowed if {
	allowed(call("/trade.marketdata.v1.MarketDataService/GetSnapshot", viewer, {"symbol": "BTC-USD"}))
	allowed(call("/trade.marketdata.v1.MarketDataService/StreamQuotes", viewer, {"symbols": ["BTC-USD", "ETH-USD"]}))
	allowed(call("/trade.marketdata.v1.MarketDataService/StreamQuotes", viewer, {}))
	allowed(call("/trade.marketdata.v1.MarketDataService/ListInstruments", viewer, {}))
}

test_instrument_scoped_without_decoded_body_denied if {
	not allowed(call("/trade.marketdata.v1.MarketDataService/GetSnapshot", viewer, null))
}

test_admin_restricted_symbol_allowed if {
	allowed(call(submit_order, admin, order_body("ACC-1", "GME-USD")))
	allowed(call("/trade.marketdata.v1.MarketDataService/GetSnapshot", admin, {"symbol": "GME-USD"}))
}

test_restricted_list_not_applied_to_cancels_and_own_book if {
	allowed(call("/trade.oms.v1.OmsService/CancelAllOrders", trader, {"accountId": "ACC-1", "symbol": "GME-USD"}))
	allowed(call("/trade.ptrc.v1.PtrcService/GetPosition", viewer, {"accountId": "ACC-1", "symbol": "GME-USD"}))
	allowed(call("/trade.risk.v1.RiskService/UpdateInstrumentLimits", risk_manager, {"symbol": "GME-USD"}))

	# ...but the account check still applies
	not allowed(call("/trade.oms.v1.OmsService/CancelAllOrders", trader, {"accountId": "ACC-9", "symbol": "GME-USD"}))
}

test_shipped_restricted_list_is_well_formed if {
	is_array(data.instruments.restricted)
	every s in data.instruments.restricted {
		is_string(s)
	}
}

# ---------------------------------------------------------------- risk controls and internals

test_risk_manager_kill_switch_allowed if {
	allowed(call(engage_kill_switch, risk_manager, {"accountId": "ACC-9", "reason": "drill"}))
	allowed(call(engage_kill_switch, risk_manager, {"reason": "global"}))
	allowed(call("/trade.risk.v1.RiskService/ReleaseKillSwitch", risk_manager, {"reason": "ok"}))
	allowed(call(engage_kill_switch, admin, {"reason": "global"}))
	allowed(call("/trade.risk.v1.RiskService/UpdateLimits", risk_manager, {"accountId": "ACC-9"}))
}

test_trader_kill_switch_denied if {
	not allowed(call(engage_kill_switch, trader, {"accountId": "ACC-1", "reason": "x"}))
	not allowed(call("/trade.risk.v1.RiskService/ReleaseKillSwitch", trader, {"accountId": "ACC-1"}))
	not allowed(call(engage_kill_switch, viewer, {"accountId": "ACC-1"}))
	not allowed(call("/trade.risk.v1.RiskService/UpdateLimits", trader, {"accountId": "ACC-1"}))
	d := decision(call(engage_kill_switch, trader, {"accountId": "ACC-1"}))
	d.headers["x-trade-authz-reason"] == "role_not_permitted"
}

test_check_order_from_edge_only_risk_manager_and_admin if {
	allowed(call("/trade.risk.v1.RiskService/CheckOrder", risk_manager, order_body("ACC-9", "BTC-USD")))
	not allowed(call("/trade.risk.v1.RiskService/CheckOrder", trader, order_body("ACC-1", "BTC-USD")))
}

test_internal_services_admin_only if {
	allowed(call("/trade.live_gateway.v1.LiveGatewayService/PlaceOrder", admin, order_body("ACC-1", "BTC-USD")))
	not allowed(call("/trade.live_gateway.v1.LiveGatewayService/PlaceOrder", trader, order_body("ACC-1", "BTC-USD")))
	not allowed(call("/trade.prism.v1.PrismService/ConfigureSimulation", risk_manager, {}))
	allowed(call("/trade.prism.v1.PrismService/ConfigureSimulation", admin, {}))
}

test_internal_stats_risk_manager_allowed if {
	allowed(call("/trade.normalizer.v1.NormalizerService/GetStats", risk_manager, {}))
	allowed(call("/trade.sink_ticks.v1.SinkTicksService/GetStats", risk_manager, {}))
	not allowed(call("/trade.normalizer.v1.NormalizerService/GetStats", viewer, {}))
	not allowed(call("/trade.questdb_writer.v1.QuestdbWriterService/GetStats", trader, {}))
}

# ---------------------------------------------------------------- the whole permission table

all_roles := ["viewer", "trader", "risk_manager", "admin"]

decide(inp) := x if {
	x := authz.allow with input as inp
		with data.revocation as revocation
		with data.instruments as restricted
}

matrix_body := {"accountId": "ACC-1", "symbol": "BTC-USD", "symbols": ["ETH-USD"]}

# For every listed RPC and every role: allowed exactly when the table lists the
# role (own account, unrestricted symbol, self as target user).
role_matrix_mismatches contains [path, role, "unexpectedly denied"] if {
	some path, perm in data.permissions.methods
	some role in all_roles
	should_allow(perm, role)
	not decide(call(path, claims_for("u-matrix", [role], ["ACC-1"]), matrix_body))
}

role_matrix_mismatches contains [path, role, "unexpectedly allowed"] if {
	some path, perm in data.permissions.methods
	some role in all_roles
	not should_allow(perm, role)
	decide(call(path, claims_for("u-matrix", [role], ["ACC-1"]), matrix_body))
}

should_allow(perm, _) if perm.public == true

should_allow(perm, role) if role in perm.roles

test_role_matrix_matches_permissions_table if {
	print("role matrix mismatches:", role_matrix_mismatches)
	count(role_matrix_mismatches) == 0
}

# Every account-scoped RPC refuses viewer/trader on an account they do not hold.
foreign_account_allowed contains path if {
	some path, perm in data.permissions.methods
	perm.account_scoped == true
	c := claims_for("u-matrix", ["viewer", "trader"], ["ACC-1"])
	decide(call(path, c, {"accountId": "ACC-2", "symbol": "BTC-USD"}))
}

test_account_scoped_rpcs_refuse_foreign_accounts if {
	count(foreign_account_allowed) == 0
}

test_permissions_table_is_well_formed if {
	count(data.permissions.methods) > 0
	every path, perm in data.permissions.methods {
		startswith(path, "/trade.")
		count(split(path, "/")) == 3
		well_formed_entry(perm)
	}
}

well_formed_entry(perm) if perm == {"public": true}

well_formed_entry(perm) if {
	count(perm.roles) > 0
	every role in perm.roles {
		role in all_roles
	}

	# admin is listed on every non-public RPC (explicitly: roles are not hierarchical)
	"admin" in perm.roles
	is_boolean(perm.account_scoped)
	is_boolean(perm.instrument_scoped)
}
