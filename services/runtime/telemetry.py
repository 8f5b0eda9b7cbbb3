"""OpenTelemetry: one tracer provider per process, W3C trace context carried in gRPC metadata and NATS headers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

_provider: TracerProvider | None = None


def configure_tracing(service: str) -> None:
    """Install a TracerProvider for the service (exporters can be added by OTEL_* env in deployments)."""
    global _provider
    if _provider is None:
        _provider = TracerProvider(resource=Resource.create({"service.name": service}))
        trace.set_tracer_provider(_provider)


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def inject_headers(carrier: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Current trace context as headers (traceparent/tracestate) for an outgoing call or NATS message."""
    out: dict[str, str] = dict(carrier or {})
    propagate.inject(out)
    return out


def extract_context(headers: Mapping[str, str] | Iterable[tuple[str, str | bytes]]) -> otel_context.Context:
    """Trace context from incoming gRPC metadata or NATS headers."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    carrier = {k.lower(): v if isinstance(v, str) else v.decode() for k, v in items}
    return propagate.extract(carrier)


def current_trace_id() -> str:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""
