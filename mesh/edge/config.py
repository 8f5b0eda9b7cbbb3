"""Renders Envoy's bootstrap config: routes per API service, gRPC-web + CORS, JWT, ext_authz (OPA), clusters."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from mesh.edge.api import Service, services
from mesh.ports import Ports, load_ports

ISSUER = "trade2026-authn"
AUDIENCE = "trade2026-api"
JWT_PROVIDER = "authn"
# The only identity header backends trust; any client-sent copy (and look-alikes) is removed first.
IDENTITY_HEADERS = (
    "x-jwt-payload",
    "x-trade-user",
    "x-trade-user-id",
    "x-trade-user-name",
    "x-trade-roles",
    "x-trade-accounts",
    "x-forwarded-client-cert",
)
PUBLIC_METHODS = (
    "/trade.authn.v1.AuthnService/Login",
    "/trade.authn.v1.AuthnService/Refresh",
    "/trade.authn.v1.AuthnService/GetJwks",
)
REFLECTION_PREFIXES = ("/grpc.reflection.v1alpha.ServerReflection/", "/grpc.reflection.v1.ServerReflection/")
HEALTH_PREFIX = "/grpc.health.v1.Health/"
REFLECTION_BACKEND = "catalog"
PERMISSIONS_FILE = Path(__file__).resolve().parents[2] / "policies" / "permissions.json"
HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"


@dataclass(frozen=True)
class EdgeOptions:
    """Where things are: 127.0.0.1 locally; compose passes service host names."""

    listen_host: str = "127.0.0.1"
    hosts: dict[str, str] = field(default_factory=dict)  # backend/infra name -> host (default 127.0.0.1)
    access_log_path: str = "/dev/stdout"
    unary_timeout_s: float = 5.0
    authz_timeout_s: float = 0.25
    max_authz_body_bytes: int = 65536
    jwks_cache_s: int = 30
    cors_origin_regex: str = r"^https?://(localhost|127\.0\.0\.1)(:[0-9]+)?$"
    # False drops header stripping, JWT and ext_authz: only for measuring what they cost (bench/).
    auth: bool = True
    listen_port: int | None = None
    admin_port: int | None = None

    def host(self, name: str) -> str:
        return self.hosts.get(name, "127.0.0.1")


def compose_options() -> EdgeOptions:
    """Inside compose every backend is reached by its service name (underscores become dashes)."""
    hosts = {svc.backend: svc.backend.replace("_", "-") for svc in services()}
    hosts.update({REFLECTION_BACKEND: REFLECTION_BACKEND, "opa": "opa"})
    return EdgeOptions(listen_host="0.0.0.0", hosts=hosts)


def _addr(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def _cluster(name: str, host: str, port: int, *, http2: bool, grpc_health: bool) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STRICT_DNS" if host != "127.0.0.1" else "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _addr(host, port)}}]}],
        },
    }
    if http2:
        cluster["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {
                    "http2_protocol_options": {"connection_keepalive": {"interval": "30s", "timeout": "10s"}}
                },
            }
        }
    if grpc_health:
        cluster["health_checks"] = [
            {
                "timeout": "1s",
                "interval": "5s",
                "no_traffic_interval": "5s",
                "unhealthy_threshold": 2,
                "healthy_threshold": 1,
                "grpc_health_check": {},
            }
        ]
    return cluster


def _no_body_buffering() -> dict[str, Any]:
    return {
        "envoy.filters.http.ext_authz": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute",
            "check_settings": {"disable_request_body_buffering": True},
        }
    }


def _methods_needing_body() -> set[str]:
    """Methods whose policy decision reads the request body (account, instrument or user scoping)."""
    table = json.loads(PERMISSIONS_FILE.read_text())["permissions"]["methods"]
    return {
        path
        for path, perm in table.items()
        if perm.get("account_scoped") or perm.get("instrument_scoped") or perm.get("user_field")
    }


def _routes(api: list[Service], opts: EdgeOptions) -> list[dict[str, Any]]:
    needs_body = _methods_needing_body()
    routes: list[dict[str, Any]] = []
    for prefix in REFLECTION_PREFIXES:
        # Reflection is a bidi stream: authorize on headers only, never wait for a body.
        routes.append(
            {
                "match": {"prefix": prefix},
                "route": {"cluster": REFLECTION_BACKEND, "timeout": "0s"},
                "typed_per_filter_config": _no_body_buffering(),
            }
        )
    for svc in api:
        for method in svc.methods:
            path = f"/{svc.full_name}/{method.name}"
            route: dict[str, Any] = {"match": {"path": path}}
            if method.server_streaming or method.client_streaming:
                # Streams live as long as the client wants: no route timeout, an idle timeout instead.
                route["route"] = {"cluster": svc.backend, "timeout": "0s", "idle_timeout": "3600s"}
            else:
                route["route"] = {
                    "cluster": svc.backend,
                    "timeout": f"{opts.unary_timeout_s}s",
                    # A client's grpc-timeout (deadline) is honoured up to this cap.
                    "max_stream_duration": {"grpc_timeout_header_max": f"{opts.unary_timeout_s}s"},
                }
            if path not in needs_body:
                # OPA decides on the method and the token alone: don't buffer and parse the body for it.
                route["typed_per_filter_config"] = _no_body_buffering()
            routes.append(route)
    return routes


def _jwt_filter(opts: EdgeOptions, ports: Ports) -> dict[str, Any]:
    public = [{"match": {"path": path}} for path in PUBLIC_METHODS]
    public += [{"match": {"prefix": prefix}} for prefix in (*REFLECTION_PREFIXES, HEALTH_PREFIX)]
    return {
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {
                JWT_PROVIDER: {
                    "issuer": ISSUER,
                    "audiences": [AUDIENCE],
                    "remote_jwks": {
                        "http_uri": {
                            "uri": f"http://{opts.host('authn')}:{ports.aux['authn_jwks']}/.well-known/jwks.json",
                            "cluster": "authn_jwks",
                            "timeout": "1s",
                        },
                        "cache_duration": f"{opts.jwks_cache_s}s",
                        "async_fetch": {"fast_listener": False},
                        "retry_policy": {
                            "num_retries": 10,
                            "retry_back_off": {"base_interval": "0.2s", "max_interval": "2s"},
                        },
                    },
                    "forward": False,
                    "forward_payload_header": "x-jwt-payload",
                    "payload_in_metadata": "jwt_payload",
                    "clock_skew_seconds": 30,
                    # Verified tokens are cached (until their exp), so a token's signature is checked once.
                    "jwt_cache_config": {"jwt_cache_size": 4096},
                }
            },
            "rules": [*public, {"match": {"prefix": "/"}, "requires": {"provider_name": JWT_PROVIDER}}],
        },
    }


def _ext_authz_filter(opts: EdgeOptions) -> dict[str, Any]:
    return {
        "name": "envoy.filters.http.ext_authz",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
            "transport_api_version": "V3",
            "grpc_service": {"envoy_grpc": {"cluster_name": "opa"}, "timeout": f"{opts.authz_timeout_s}s"},
            # Fail closed: OPA down, slow or erroring means the call is refused. With 503 (gRPC UNAVAILABLE, which
            # clients retry), not 403: PERMISSION_DENIED is for what the policy decided.
            "failure_mode_allow": False,
            "status_on_error": {"code": 503},
            "with_request_body": {
                "max_request_bytes": opts.max_authz_body_bytes,
                "allow_partial_message": True,
                "pack_as_bytes": True,
            },
            "metadata_context_namespaces": ["envoy.filters.http.jwt_authn"],
            "clear_route_cache": False,
        },
    }


def _malformed_status_b64() -> str:
    """A google.rpc.Status for bodies the edge could not decode, matching what services send for the same."""
    info = error_details_pb2.ErrorInfo(reason="MALFORMED_REQUEST", domain="trade2026")
    bad = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(
                field="request", description="request body is not a valid message for this method"
            )
        ]
    )
    details = []
    for message in (info, bad):
        packed = any_pb2.Any()
        packed.Pack(message)
        details.append(packed)
    status = status_pb2.Status(code=3, message="request body is not a valid message", details=details)
    return base64.b64encode(status.SerializeToString()).decode().rstrip("=")


def _local_reply_config() -> dict[str, Any]:
    """OPA answers HTTP 400 when a gRPC body does not decode; gRPC clients should see INVALID_ARGUMENT."""
    return {
        "mappers": [
            {
                "filter": {
                    "and_filter": {
                        "filters": [
                            {
                                "status_code_filter": {
                                    "comparison": {
                                        "op": "EQ",
                                        "value": {
                                            "default_value": 400,
                                            "runtime_key": "trade.edge.bad_request_code",
                                        },
                                    }
                                }
                            },
                            {
                                "header_filter": {
                                    "header": {
                                        "name": "content-type",
                                        "string_match": {"prefix": "application/grpc"},
                                    }
                                }
                            },
                        ]
                    }
                },
                "headers_to_add": [
                    {
                        "header": {"key": "grpc-status", "value": "3"},
                        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                    },
                    {
                        "header": {"key": "grpc-status-details-bin", "value": _malformed_status_b64()},
                        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                    },
                ],
            }
        ]
    }


def _cors_policy(opts: EdgeOptions) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy",
        "allow_origin_string_match": [{"safe_regex": {"regex": opts.cors_origin_regex}}],
        "allow_methods": "POST, OPTIONS",
        "allow_headers": (
            "authorization,content-type,x-grpc-web,x-user-agent,grpc-timeout,x-request-id,"
            "connect-protocol-version,connect-timeout-ms,x-accept-content-transfer-encoding,"
            "x-accept-response-streaming"
        ),
        "expose_headers": "grpc-status,grpc-message,grpc-status-details-bin,x-request-id",
        "max_age": "86400",
    }


def _http_filters(opts: EdgeOptions, ports: Ports) -> list[dict[str, Any]]:
    security = [
        {
            "name": "envoy.filters.http.header_mutation",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
                "mutations": {"request_mutations": [{"remove": h} for h in IDENTITY_HEADERS]},
            },
        },
        _jwt_filter(opts, ports),
        _ext_authz_filter(opts),
    ]
    return [
        {
            "name": "envoy.filters.http.grpc_web",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.grpc_web.v3.GrpcWeb"},
        },
        {
            "name": "envoy.filters.http.cors",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"},
        },
        *(security if opts.auth else []),
        {
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
        },
    ]


def render(opts: EdgeOptions | None = None, ports: Ports | None = None) -> dict[str, Any]:
    """The whole Envoy bootstrap as a dict (dump it as YAML)."""
    opts = opts or EdgeOptions()
    ports = ports or load_ports()
    api = services()
    backends = sorted({svc.backend for svc in api} | {REFLECTION_BACKEND})
    clusters = [_cluster(name, opts.host(name), ports.service(name), http2=True, grpc_health=True) for name in backends]
    clusters.append(_cluster("opa", opts.host("opa"), ports.infra["opa_envoy_grpc"], http2=True, grpc_health=False))
    clusters.append(_cluster("authn_jwks", opts.host("authn"), ports.aux["authn_jwks"], http2=False, grpc_health=False))
    hcm = {
        "@type": HCM_TYPE,
        "stat_prefix": "edge",
        "codec_type": "AUTO",
        "use_remote_address": True,
        "generate_request_id": True,
        "stream_idle_timeout": "3600s",
        "local_reply_config": _local_reply_config(),
        "http2_protocol_options": {"max_concurrent_streams": 1024},
        "access_log": [
            {
                "name": "envoy.access_loggers.file",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                    "path": opts.access_log_path,
                    "log_format": {
                        "json_format": {
                            "time": "%START_TIME%",
                            "path": "%REQ(:PATH)%",
                            "status": "%RESPONSE_CODE%",
                            "grpc_status": "%GRPC_STATUS(NUMBER)%",
                            "flags": "%RESPONSE_FLAGS%",
                            "details": "%RESPONSE_CODE_DETAILS%",
                            "duration_ms": "%DURATION%",
                            "upstream": "%UPSTREAM_HOST%",
                            "request_id": "%REQ(X-REQUEST-ID)%",
                        }
                    },
                },
            }
        ],
        "route_config": {
            "name": "api",
            "virtual_hosts": [
                {
                    "name": "api",
                    "domains": ["*"],
                    "routes": _routes(api, opts),
                    "typed_per_filter_config": {"envoy.filters.http.cors": _cors_policy(opts)},
                }
            ],
        },
        "http_filters": _http_filters(opts, ports),
    }
    return {
        "admin": {"address": _addr(opts.listen_host, opts.admin_port or ports.edge["envoy_admin"])},
        "static_resources": {
            "listeners": [
                {
                    "name": "edge",
                    "address": _addr(opts.listen_host, opts.listen_port or ports.edge["envoy"]),
                    "per_connection_buffer_limit_bytes": 1 << 20,
                    "filter_chains": [
                        {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}
                    ],
                }
            ],
            "clusters": clusters,
        },
        "layered_runtime": {
            "layers": [{"name": "static", "static_layer": {"overload.global_downstream_max_connections": 10000}}]
        },
    }
