# Trade2026 edge authorization, evaluated by the OPA Envoy ext_authz plugin
# (run with path trade/authz/result) for every call that reaches the edge.
#
# Input (ext_authz v3 CheckRequest rendered by the plugin; protobuf field
# names are lowerCamelCase, google.protobuf.Struct values are plain JSON):
#   input.attributes.request.http.path   "/trade.oms.v1.OmsService/SubmitOrder"
#   input.parsed_path                     ["trade.oms.v1.OmsService", "SubmitOrder"]
#   input.parsed_body                     gRPC request decoded with the API
#                                         descriptor set (protojson: accountId, symbol, userId)
#   input.truncated_body                  true when Envoy sent a partial body
#   input.attributes.metadataContext.filterMetadata["envoy.filters.http.jwt_authn"].jwt_payload
#                                         claims of the JWT Envoy verified (absent if none)
#
# Data:
#   data.permissions   policies/permissions.json (methods, public services, scope overrides)
#   data.instruments   policies/instruments.json ({"restricted": [symbols]})
#   data.revocation    pushed by authn via PUT /v1/data/revocation:
#                      {"loaded": true, "jtis": {jti: exp}, "subjects": {sub: not_before}}
#
# Everything is denied unless a rule below allows it. Roles are not hierarchical:
# a role may call a method only when permissions.json lists it for that method
# (admin is listed explicitly where it is allowed).
package trade.authz

# The plugin's decision: allowed plus headers, or a denial with status and reason.
result := {
	"allowed": true,
	"headers": upstream_headers,
	"request_headers_to_remove": spoofable_headers,
} if {
	allow
} else := {
	"allowed": false,
	"http_status": http_status,
	"headers": {"x-trade-authz-reason": reason},
	"body": sprintf("trade-authz: permission denied (%s)", [reason]),
}

default allow := false

# Public RPCs need no token.
allow if public_method

# Everything else: a valid, unrevoked access token whose roles may call the
# method, and the method's account, instrument and user scoping rules hold.
allow if {
	authenticated
	count(granted_roles) > 0
	account_ok
	instrument_ok
	user_ok
}

jwt_filter := "envoy.filters.http.jwt_authn"

jwt_payload_key := "jwt_payload"

issuer := "trade2026-authn"

# Identity headers set for upstream services; any client-supplied copies are removed.
identity_header_names := ["x-trade-user-id", "x-trade-user-name", "x-trade-roles", "x-trade-accounts"]

method_path := input.attributes.request.http.path

perm := data.permissions.methods[method_path]

claims := input.attributes.metadataContext.filterMetadata[jwt_filter][jwt_payload_key]

body := input.parsed_body

public_method if perm.public == true

public_method if {
	count(input.parsed_path) == 2
	input.parsed_path[0] in data.permissions.public_services
	input.parsed_path[1] != ""
	method_path == concat("/", ["", input.parsed_path[0], input.parsed_path[1]])
}

known_method if perm

known_method if public_method

revocation_loaded if data.revocation.loaded == true

# Envoy has verified signature, audience and expiry; check what is ours to check.
valid_token if {
	claims.typ == "access"
	claims.iss == issuer
	is_string(claims.sub)
	claims.sub != ""
	is_string(claims.jti)
	claims.jti != ""
	is_number(claims.iat)
}

# Key lookup (any value counts): constant time however long the list grows.
jti_revoked if {
	_ = data.revocation.jtis[claims.jti]
}

# Tokens issued before the subject's not-before time are revoked.
subject_revoked if claims.iat < data.revocation.subjects[claims.sub]

# Fail closed: until authn has pushed the revocation list, no authenticated call passes.
authenticated if {
	revocation_loaded
	valid_token
	not jti_revoked
	not subject_revoked
}

user_roles contains role if {
	some role in claims.roles
	is_string(role)
}

granted_roles contains role if {
	some role in perm.roles
	role in user_roles
}

# Granted roles that lift a scoping rule (e.g. risk_manager acts on any account).
overriding_roles(kind) := {role |
	some role in data.permissions.scope_overrides[kind]
	role in granted_roles
}

# The request body was decoded: scoping decisions are never made on a missing
# (compressed, truncated or undecodable) body.
body_ok if {
	is_object(body)
	not input.truncated_body == true
}

account_ok if not perm.account_scoped

account_ok if count(overriding_roles("any_account")) > 0

account_ok if {
	body_ok
	is_string(body.accountId)
	body.accountId in claims.accounts
}

restricted_instruments := {upper(s) | some s in data.instruments.restricted; is_string(s)}

requested_symbols contains upper(body.symbol) if is_string(body.symbol)

requested_symbols contains upper(s) if {
	some s in body.symbols
	is_string(s)
}

instrument_ok if not perm.instrument_scoped

# Risk-reducing calls and reads of one's own book stay possible on restricted symbols.
instrument_ok if perm.allow_restricted_symbols == true

instrument_ok if count(overriding_roles("restricted_instrument")) > 0

instrument_ok if {
	body_ok
	count(requested_symbols & restricted_instruments) == 0
}

# Self-service methods: the target user (perm.user_field) is empty or the caller.
user_ok if not perm.user_field

user_ok if count(overriding_roles("any_user")) > 0

user_ok if {
	body_ok
	object.get(body, perm.user_field, "") in {"", claims.sub}
}

# Envoy removes these after adding "headers": strip client copies only where we set none.
spoofable_headers := [] if authenticated

else := identity_header_names

upstream_headers := {
	"x-trade-user-id": claims.sub,
	"x-trade-user-name": object.get(claims, "name", ""),
	"x-trade-roles": concat(",", sort(user_roles)),
	"x-trade-accounts": concat(",", sort([a | some a in object.get(claims, "accounts", []); is_string(a)])),
} if {
	authenticated
} else := {}

# Why a call was denied (first failing check), for the x-trade-authz-reason header.
reason := "allowed" if {
	allow
} else := "unknown_method" if {
	not known_method
} else := "unauthenticated" if {
	not claims
} else := "authz_data_not_loaded" if {
	not revocation_loaded
} else := "invalid_token" if {
	not valid_token
} else := "token_revoked" if {
	jti_revoked
} else := "subject_revoked" if {
	subject_revoked
} else := "role_not_permitted" if {
	count(granted_roles) == 0
} else := "request_body_unavailable" if {
	not body_ok
} else := "account_not_permitted" if {
	not account_ok
} else := "instrument_restricted" if {
	not instrument_ok
} else := "user_not_permitted"

# Envoy turns these into gRPC codes: 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 503 UNAVAILABLE.
reason_status := {
	"unauthenticated": 401,
	"invalid_token": 401,
	"token_revoked": 401,
	"subject_revoked": 401,
	"authz_data_not_loaded": 503,
}

http_status := object.get(reason_status, reason, 403)
