"""The shared server bootstrap and interceptor, exercised on an in-process grpc.aio server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
import structlog
from google.protobuf import wrappers_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from services.runtime.clients import insecure_channel
from services.runtime.errors import DomainError, ErrorKind, FieldViolation, invalid_argument
from services.runtime.server import Registration, RunningServer, start_server
from services.runtime.settings import ServiceSettings
from services.runtime.status import bad_request, error_info, status_from_trailers

SERVICE = "test.v1.EchoService"


async def _echo(request: wrappers_pb2.StringValue, context: Any) -> wrappers_pb2.StringValue:
    if request.value == "domain":
        raise DomainError(
            "RISK_MAX_NOTIONAL",
            "notional too large",
            ErrorKind.FAILED_PRECONDITION,
            metadata={"limit": "100"},
        )
    if request.value == "invalid":
        raise invalid_argument(FieldViolation("value", "must not be 'invalid'"))
    if request.value == "boom":
        raise RuntimeError("unexpected")
    if request.value == "context":
        bound = structlog.contextvars.get_contextvars()
        return wrappers_pb2.StringValue(value=f"{bound.get('request_id')}|{bound.get('trace_id')}")
    if request.value.startswith("sleep:"):
        await asyncio.sleep(float(request.value.split(":")[1]))
    return wrappers_pb2.StringValue(value=request.value)


async def _count(request: wrappers_pb2.Int32Value, context: Any) -> AsyncIterator[wrappers_pb2.Int32Value]:
    for i in range(request.value):
        yield wrappers_pb2.Int32Value(value=i)
    raise DomainError("STREAM_END", "stopped on purpose", ErrorKind.ABORTED)


def _register(server: grpc.aio.Server) -> None:
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                SERVICE,
                {
                    "Echo": grpc.unary_unary_rpc_method_handler(
                        _echo,
                        request_deserializer=wrappers_pb2.StringValue.FromString,
                        response_serializer=wrappers_pb2.StringValue.SerializeToString,
                    ),
                    "Count": grpc.unary_stream_rpc_method_handler(
                        _count,
                        request_deserializer=wrappers_pb2.Int32Value.FromString,
                        response_serializer=wrappers_pb2.Int32Value.SerializeToString,
                    ),
                },
            )
        ]
    )


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    settings = ServiceSettings(
        service_name="echo", port=0, max_receive_message_bytes=64 * 1024, shutdown_grace_s=5.0, log_json=False
    )
    running = await start_server(settings, Registration(add_to_server=_register, service_names=[SERVICE]))
    yield running
    await running.stop()


def _echo_call(channel: grpc.aio.Channel) -> Any:
    return channel.unary_unary(
        f"/{SERVICE}/Echo",
        request_serializer=wrappers_pb2.StringValue.SerializeToString,
        response_deserializer=wrappers_pb2.StringValue.FromString,
    )


async def test_domain_error_becomes_status_with_error_info(server: RunningServer) -> None:
    async with insecure_channel(f"127.0.0.1:{server.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _echo_call(channel)(wrappers_pb2.StringValue(value="domain"))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    status = status_from_trailers(caught.value.trailing_metadata())
    assert status is not None
    info = error_info(status)
    assert info is not None and info.reason == "RISK_MAX_NOTIONAL" and info.metadata["limit"] == "100"


async def test_validation_error_carries_bad_request_field_violations(server: RunningServer) -> None:
    async with insecure_channel(f"127.0.0.1:{server.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _echo_call(channel)(wrappers_pb2.StringValue(value="invalid"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = status_from_trailers(caught.value.trailing_metadata())
    bad = bad_request(status) if status else None
    assert bad is not None and bad.field_violations[0].field == "value"


async def test_unexpected_exception_is_internal_without_leaking_the_message(server: RunningServer) -> None:
    async with insecure_channel(f"127.0.0.1:{server.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _echo_call(channel)(wrappers_pb2.StringValue(value="boom"))
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "unexpected" not in (caught.value.details() or "")


async def test_malformed_bytes_are_invalid_argument(server: RunningServer) -> None:
    async with insecure_channel(f"127.0.0.1:{server.port}") as channel:
        raw: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(f"/{SERVICE}/Echo")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await raw(b"\x0a\x64abc")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = status_from_trailers(caught.value.trailing_metadata())
    assert status is not None and error_info(status).reason == "MALFORMED_REQUEST"  # type: ignore[union-attr]


async def test_oversized_message_is_resource_exhausted(server: RunningServer) -> None:
    async with insecure_channel(f"127.0.0.1:{server.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _echo_call(channel)(wrappers_pb2.StringValue(value="x" * 200_000))
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        reply = await _echo_call(channel)(wrappers_pb2.StringValue(value="still alive"))
    assert reply.value == "still alive"


async def test_stream_error_after_items_keeps_items_and_status(server: RunningServer) -> None:
    async with insecure_channel(f"127.0.0.1:{server.port}") as channel:
        count = channel.unary_stream(
            f"/{SERVICE}/Count",
            request_serializer=wrappers_pb2.Int32Value.SerializeToString,
            response_deserializer=wrappers_pb2.Int32Value.FromString,
        )
        got = []
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for item in count(wrappers_pb2.Int32Value(value=3)):
                got.append(item.value)
    assert got == [0, 1, 2]
    assert caught.value.code() == grpc.StatusCode.ABORTED


async def test_health_and_reflection_are_served(server: RunningServer) -> None:
    async with insecure_channel(f"127.0.0.1:{server.port}") as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=SERVICE))
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = set()
        async for response in responses:
            names = {s.name for s in response.list_services_response.service}
            break
    assert SERVICE in names and "grpc.health.v1.Health" in names


async def test_request_id_and_incoming_trace_id_are_bound_for_logging(server: RunningServer) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    metadata = (("x-request-id", "req-42"), ("traceparent", f"00-{trace_id}-00f067aa0ba902b7-01"))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        reply = await _echo_call(channel)(wrappers_pb2.StringValue(value="context"), metadata=metadata)
    assert reply.value == f"req-42|{trace_id}"


async def test_client_default_deadline_applies_to_unary_calls(server: RunningServer) -> None:
    async with insecure_channel(f"127.0.0.1:{server.port}", default_deadline_s=0.2) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _echo_call(channel)(wrappers_pb2.StringValue(value="sleep:2"))
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_graceful_shutdown_drains_in_flight_calls_and_reports_not_serving(
    server: RunningServer,
) -> None:
    async with insecure_channel(f"127.0.0.1:{server.port}") as channel:
        in_flight = asyncio.ensure_future(_echo_call(channel)(wrappers_pb2.StringValue(value="sleep:0.5"), timeout=5))
        await asyncio.sleep(0.1)
        stopping = asyncio.ensure_future(server.stop())
        await asyncio.sleep(0.05)
        health = await server.health.Check(health_pb2.HealthCheckRequest(service=""), None)
        assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING
        reply = await in_flight
        await stopping
    assert reply.value == "sleep:0.5"


async def test_a_service_freezes_its_heap_once_its_start_hooks_loaded_the_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import services.runtime.server as server_module

    steps: list[str] = []

    async def hook() -> None:
        steps.append("state loaded")

    monkeypatch.setattr(server_module, "freeze_startup_heap", lambda: steps.append("heap frozen"))
    settings = ServiceSettings(service_name="echo", port=0, log_json=False)
    registration = Registration(add_to_server=_register, service_names=[SERVICE], on_start=[hook])
    running = await start_server(settings, registration, freeze_heap=True)
    try:
        steps.append("serving")
        assert steps == ["state loaded", "heap frozen", "serving"]
    finally:
        await running.stop()


async def test_a_test_server_leaves_the_heap_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    import services.runtime.server as server_module

    frozen: list[bool] = []
    monkeypatch.setattr(server_module, "freeze_startup_heap", lambda: frozen.append(True))
    settings = ServiceSettings(service_name="echo", port=0, log_json=False)
    running = await start_server(settings, Registration(add_to_server=_register, service_names=[SERVICE]))
    await running.stop()
    assert frozen == []
