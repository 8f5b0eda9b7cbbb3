"""Outgoing gRPC channels: a default deadline on every unary call, request id and trace context propagated."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import structlog

from services.runtime.telemetry import inject_headers


def _with_context(details: grpc.aio.ClientCallDetails, default_timeout: float | None) -> grpc.aio.ClientCallDetails:
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    for key, value in inject_headers().items():
        metadata[key] = value
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    if request_id and not metadata.get_all("x-request-id"):
        metadata["x-request-id"] = request_id
    timeout = details.timeout if details.timeout is not None else default_timeout
    return grpc.aio.ClientCallDetails(details.method, timeout, metadata, details.credentials, details.wait_for_ready)


class _UnaryDeadline(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(_with_context(details, self.timeout), request)


class _StreamContext(grpc.aio.UnaryStreamClientInterceptor):
    """Streams are long-lived: they carry context but get a deadline only when the caller sets one."""

    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(_with_context(details, None), request)


def insecure_channel(
    target: str, default_deadline_s: float = 2.0, options: list[tuple[str, Any]] | None = None
) -> grpc.aio.Channel:
    """A channel whose unary calls always have a deadline (default_deadline_s unless the caller sets one)."""
    return grpc.aio.insecure_channel(
        target,
        options=options or [("grpc.keepalive_time_ms", 30_000), ("grpc.max_receive_message_length", 16 << 20)],
        interceptors=[_UnaryDeadline(default_deadline_s), _StreamContext()],
    )
