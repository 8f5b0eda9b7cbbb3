"""Edge transport behaviour: gRPC-web over HTTP/1.1, CORS, reflection, bad bodies, size limits, OPA outage."""

from __future__ import annotations

import http.client
import os
import signal
import struct
import subprocess
import time

import grpc
import pytest
from trade.authn.v1 import authn_pb2

from mesh import control
from mesh.ports import load_ports
from tests.support.edge import DEMO_PASSWORDS, authn_stub, bearer, code_of, rich_status, token_for
from tests.support.mesh import grpcurl_binary, restart_opa_and_wait, stop_opa

pytestmark = pytest.mark.usefixtures("mesh")

EDGE_PORT = load_ports().edge["envoy"]
LOGIN = "/trade.authn.v1.AuthnService/Login"


def _grpc_web_frame(message: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", len(message)) + message


def _parse_grpc_web(body: bytes) -> tuple[list[bytes], dict[str, str]]:
    messages, trailers, offset = [], {}, 0
    while offset < len(body):
        flag, length = body[offset], struct.unpack(">I", body[offset + 1 : offset + 5])[0]
        chunk = body[offset + 5 : offset + 5 + length]
        offset += 5 + length
        if flag & 0x80:
            for line in chunk.decode().split("\r\n"):
                if ":" in line:
                    key, value = line.split(":", 1)
                    trailers[key.strip().lower()] = value.strip()
        else:
            messages.append(chunk)
    return messages, trailers


def test_grpc_web_call_over_http1_succeeds() -> None:
    request = authn_pb2.LoginRequest(
        password=authn_pb2.PasswordCredential(username="viewer", password=DEMO_PASSWORDS["viewer"])
    )
    conn = http.client.HTTPConnection("127.0.0.1", EDGE_PORT, timeout=10)
    conn.request(
        "POST",
        LOGIN,
        body=_grpc_web_frame(request.SerializeToString()),
        headers={
            "content-type": "application/grpc-web+proto",
            "x-grpc-web": "1",
            "origin": "http://localhost:5173",
        },
    )
    response = conn.getresponse()
    assert response.version == 11
    assert response.status == 200
    assert response.getheader("access-control-allow-origin") == "http://localhost:5173"
    messages, trailers = _parse_grpc_web(response.read())
    assert trailers.get("grpc-status") == "0"
    reply = authn_pb2.LoginResponse.FromString(messages[0])
    assert reply.user.username == "viewer"
    assert reply.tokens.access_token.count(".") == 2


def test_cors_preflight_allows_local_origins_only() -> None:
    def preflight(origin: str) -> str | None:
        conn = http.client.HTTPConnection("127.0.0.1", EDGE_PORT, timeout=10)
        conn.request(
            "OPTIONS",
            LOGIN,
            headers={
                "origin": origin,
                "access-control-request-method": "POST",
                "access-control-request-headers": "content-type,x-grpc-web,authorization",
            },
        )
        response = conn.getresponse()
        response.read()
        return response.getheader("access-control-allow-origin")

    assert preflight("http://localhost:5173") == "http://localhost:5173"
    assert preflight("https://evil.example") is None


def test_grpcurl_lists_the_whole_api_through_the_edge() -> None:
    out = subprocess.run(
        [grpcurl_binary(), "-plaintext", f"127.0.0.1:{EDGE_PORT}", "list"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    listed = set(out.stdout.split())
    assert {
        "trade.authn.v1.AuthnService",
        "trade.oms.v1.OmsService",
        "trade.marketdata.v1.MarketDataService",
        "trade.risk.v1.RiskService",
        "trade.library.v1.LibraryService",
    } <= listed
    described = subprocess.run(
        [
            grpcurl_binary(),
            "-plaintext",
            f"127.0.0.1:{EDGE_PORT}",
            "describe",
            "trade.oms.v1.SubmitOrderRequest",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert described.returncode == 0, described.stderr
    assert "account_id" in described.stdout


def test_malformed_request_body_is_invalid_argument(edge: grpc.Channel) -> None:
    raw: grpc.UnaryUnaryMultiCallable[bytes, bytes] = edge.unary_unary(
        LOGIN, request_serializer=None, response_deserializer=None
    )
    # field 1 (length-delimited) claims 100 bytes but only 3 follow: not a parseable message.
    with pytest.raises(grpc.RpcError) as caught:
        raw(b"\x0a\x64abc", timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rich_status(caught.value)
    assert status is not None and status.details, "expected google.rpc.Status details"


def test_oversized_message_is_resource_exhausted(edge: grpc.Channel) -> None:
    token = token_for(edge, "admin")
    huge = authn_pb2.CreateUserRequest(username="big", password="x" * (5 * 1024 * 1024))
    code = code_of(lambda: authn_stub(edge).CreateUser(huge, metadata=bearer(token), timeout=10))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    # The service is still there afterwards.
    assert (
        code_of(lambda: authn_stub(edge).WhoAmI(authn_pb2.WhoAmIRequest(), metadata=bearer(token), timeout=5))
        == grpc.StatusCode.OK
    )


def test_invalid_fields_come_back_as_bad_request_details(edge: grpc.Channel) -> None:
    token = token_for(edge, "admin")
    with pytest.raises(grpc.RpcError) as caught:
        authn_stub(edge).CreateUser(
            authn_pb2.CreateUserRequest(username="X!", password="short"), metadata=bearer(token), timeout=5
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rich_status(caught.value)
    assert status is not None
    from services.runtime.status import bad_request, error_info

    info, bad = error_info(status), bad_request(status)
    assert info is not None and info.reason == "VALIDATION_FAILED" and info.domain == "trade2026"
    assert bad is not None
    assert {v.field for v in bad.field_violations} == {"username", "password", "roles"}


def test_a_hung_opa_means_calls_are_refused_as_unavailable_within_the_authz_timeout(edge: grpc.Channel) -> None:
    token = token_for(edge, "admin")
    pid = control.pid("opa")
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        code = code_of(lambda: authn_stub(edge).WhoAmI(authn_pb2.WhoAmIRequest(), metadata=bearer(token), timeout=5))
        elapsed = time.monotonic() - started
    finally:
        os.kill(pid, signal.SIGCONT)
    assert code == grpc.StatusCode.UNAVAILABLE  # refused (fail closed), and retryable: no policy said no
    assert elapsed < 1.5, f"denial took {elapsed:.2f}s; the edge must not wait on a hung OPA"


def test_opa_stopped_means_calls_are_refused_as_unavailable(edge: grpc.Channel) -> None:
    token = token_for(edge, "admin")

    def whoami() -> grpc.StatusCode:
        return code_of(lambda: authn_stub(edge).WhoAmI(authn_pb2.WhoAmIRequest(), metadata=bearer(token), timeout=5))

    assert whoami() == grpc.StatusCode.OK
    stop_opa()
    try:
        started = time.monotonic()
        assert whoami() == grpc.StatusCode.UNAVAILABLE
        assert time.monotonic() - started < 2.0, "a down OPA must fail fast, not hang"
    finally:
        restart_opa_and_wait()
    deadline = time.monotonic() + 15
    while whoami() != grpc.StatusCode.OK and time.monotonic() < deadline:
        time.sleep(0.2)
    assert whoami() == grpc.StatusCode.OK
