"""Settings, identity, status mapping, trace propagation and stream specs of the shared runtime."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from nats.js import api
from opentelemetry import trace

from mesh.ports import load_ports
from services.runtime.errors import DomainError, ErrorKind, FieldViolation, Validator
from services.runtime.identity import principal_from_metadata
from services.runtime.settings import ServiceSettings
from services.runtime.status import bad_request, error_info, to_status
from services.runtime.streams import ALL_STREAMS, FILLS, ORDERS
from services.runtime.telemetry import configure_tracing, extract_context, inject_headers


def test_settings_read_typed_values_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADE_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("TRADE_DEFAULT_DEADLINE_S", "0.75")
    settings = ServiceSettings()
    assert settings.log_level == "DEBUG" and settings.default_deadline_s == 0.75
    assert settings.nats_url == f"nats://127.0.0.1:{load_ports().infra['nats']}"


def test_settings_reject_values_of_the_wrong_type(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADE_SHUTDOWN_GRACE_S", "soon")
    with pytest.raises(ValueError):
        ServiceSettings()


def test_status_has_error_info_and_bad_request() -> None:
    error = DomainError("VALIDATION_FAILED", "bad", ErrorKind.INVALID_ARGUMENT, (FieldViolation("qty", "> 0"),))
    status = to_status(error)
    assert status.code == 3
    info, bad = error_info(status), bad_request(status)
    assert info is not None and info.reason == "VALIDATION_FAILED" and info.domain == "trade2026"
    assert bad is not None and bad.field_violations[0].field == "qty"


def test_validator_collects_all_violations_before_raising() -> None:
    check = Validator()
    check.require(False, "a", "x")
    check.require(True, "b", "y")
    check.require(False, "c", "z")
    with pytest.raises(DomainError) as caught:
        check.raise_if_any()
    assert [v.field for v in caught.value.violations] == ["a", "c"]


def test_principal_is_read_from_the_edge_forwarded_payload() -> None:
    claims = {"sub": "u1", "name": "alice", "roles": ["trader"], "accounts": ["A1"], "jti": "j", "exp": 5}
    header = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    principal = principal_from_metadata([("x-jwt-payload", header)])
    assert principal is not None
    assert principal.user_id == "u1" and principal.may_act_on("A1") and not principal.may_act_on("A2")
    assert principal_from_metadata([("authorization", "Bearer x")]) is None


def test_trace_context_round_trips_through_headers() -> None:
    configure_tracing("test")
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("outer") as span:
        headers = inject_headers()
        trace_id = span.get_span_context().trace_id
    assert "traceparent" in headers
    ctx = extract_context(headers)
    assert trace.get_current_span(ctx).get_span_context().trace_id == trace_id


def test_order_and_fill_streams_are_file_backed_and_deduplicated() -> None:
    for spec in (ORDERS, FILLS):
        config = spec.config()
        assert config.storage == api.StorageType.FILE
        assert config.duplicate_window and config.duplicate_window >= 3600
    subjects = [s for spec in ALL_STREAMS for s in spec.subjects]
    assert len(subjects) == len(set(subjects)), "a subject must belong to one stream only"


async def test_a_cancel_swallowed_inside_a_library_call_still_stops_the_consumer_loop() -> None:
    from services.runtime.batches import _raise_if_cancel_requested

    swallowed = asyncio.Event()

    async def loop_like_consume_batches() -> None:
        while True:
            _raise_if_cancel_requested()
            try:  # what nats-py's flush path does with a CancelledError
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                swallowed.set()

    task = asyncio.create_task(loop_like_consume_batches())
    await asyncio.sleep(0.02)
    task.cancel()
    async with asyncio.timeout(2):
        await asyncio.gather(task, return_exceptions=True)
    assert swallowed.is_set() and task.cancelled()
