"""Server interceptor: request/trace context, access logging, and domain errors -> google.rpc.Status."""

from __future__ import annotations

import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import Token
from typing import Any

import grpc
import structlog
from google.protobuf.message import DecodeError
from opentelemetry import context as otel_context
from opentelemetry import trace

from services.runtime.errors import DomainError, ErrorKind, FieldViolation, invalid_argument
from services.runtime.status import STATUS_DETAILS_KEY, grpc_code, to_status
from services.runtime.telemetry import current_trace_id, extract_context

log = structlog.get_logger("rpc")
_tracer = trace.get_tracer("trade.runtime.grpc")


class _Malformed:
    """Stands in for a request whose bytes did not parse, so the handler can answer INVALID_ARGUMENT."""

    def __init__(self, error: str) -> None:
        self.error = error


def _safe_deserializer(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except (DecodeError, ValueError, RuntimeError) as exc:
            return _Malformed(str(exc))

    return parse


async def abort_with(context: grpc.aio.ServicerContext[Any, Any], error: DomainError) -> None:
    status = to_status(error)
    await context.abort(
        grpc_code(error.kind),
        error.message,
        trailing_metadata=((STATUS_DETAILS_KEY, status.SerializeToString()),),
    )


def _malformed_error(request: _Malformed) -> DomainError:
    return invalid_argument(
        FieldViolation("request", f"request body is not a valid message: {request.error}"),
        reason="MALFORMED_REQUEST",
    )


class ServerInterceptor(grpc.aio.ServerInterceptor):
    """Binds request id + trace context, logs each call, and maps exceptions to rich statuses."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method: str = handler_call_details.method
        metadata = tuple(handler_call_details.invocation_metadata or ())
        deserializer = _safe_deserializer(handler.request_deserializer)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(handler.unary_unary, method, metadata),
                request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(handler.unary_stream, method, metadata),
                request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap_unary(handler.stream_unary, method, metadata),
                request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            self._wrap_stream(handler.stream_stream, method, metadata),
            request_deserializer=deserializer,
            response_serializer=handler.response_serializer,
        )

    def _wrap_unary(self, behavior: Any, method: str, metadata: tuple[Any, ...]) -> Any:
        async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            async with _rpc_scope(method, metadata, request, context):
                return await behavior(request, context)

        return call

    def _wrap_stream(self, behavior: Any, method: str, metadata: tuple[Any, ...]) -> Any:
        async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            async with _rpc_scope(method, metadata, request, context):
                if inspect.isasyncgenfunction(behavior):
                    async for item in behavior(request, context):
                        yield item
                else:
                    await behavior(request, context)

        return call


@contextlib.asynccontextmanager
async def _rpc_scope(
    method: str, metadata: tuple[Any, ...], request: Any, context: grpc.aio.ServicerContext[Any, Any]
) -> AsyncIterator[None]:
    """Context, span and logging around one call; exceptions leave as rich statuses."""
    token = _enter(method, metadata)
    start = time.perf_counter()
    try:
        if isinstance(request, _Malformed):
            raise _malformed_error(request)
        with _tracer.start_as_current_span(method, kind=trace.SpanKind.SERVER):
            structlog.contextvars.bind_contextvars(trace_id=current_trace_id())
            yield
    except BaseException as exc:
        await _handle(exc, context, method, start)
        raise
    finally:
        _log_done(context, method, start)
        otel_context.detach(token)


def _enter(method: str, metadata: tuple[Any, ...]) -> Token[otel_context.Context]:
    request_id = next((v for k, v in metadata if k == "x-request-id"), "")
    token = otel_context.attach(extract_context(metadata))
    structlog.contextvars.bind_contextvars(request_id=request_id, method=method)
    return token


async def _handle(exc: BaseException, context: grpc.aio.ServicerContext[Any, Any], method: str, start: float) -> None:
    """Turn a domain error (or an unexpected one) into an abort; let cancellations and aborts through."""
    if isinstance(exc, DomainError):
        log.info("rpc.error", reason=exc.reason, kind=exc.kind.value, ms=_ms(start))
        await abort_with(context, exc)
    elif isinstance(exc, Exception) and not isinstance(exc, grpc.aio.AbortError):
        log.exception("rpc.unhandled", ms=_ms(start))
        await abort_with(context, DomainError("INTERNAL", "internal error", ErrorKind.INTERNAL))


def _log_done(context: grpc.aio.ServicerContext[Any, Any], method: str, start: float) -> None:
    log.debug("rpc.done", code=str(context.code()), ms=_ms(start))
    structlog.contextvars.unbind_contextvars("request_id", "method", "trace_id")


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)
