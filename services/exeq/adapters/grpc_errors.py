"""Reading a failed call: retryable or definitive, and the machine-readable reason it carried."""

from __future__ import annotations

import grpc

from services.runtime.status import error_info, status_from_trailers

# A dependency that could not answer now: retried with backoff (the work item stays unacknowledged).
TRANSIENT_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
    }
)


def is_transient(exc: grpc.aio.AioRpcError) -> bool:
    return exc.code() in TRANSIENT_CODES


def reason_of(exc: grpc.aio.AioRpcError) -> str:
    """ErrorInfo.reason of the failure ("" when the status carried none)."""
    status = status_from_trailers(exc.trailing_metadata())
    info = error_info(status) if status is not None else None
    return info.reason if info is not None else ""


def describe(exc: grpc.aio.AioRpcError) -> str:
    reason = reason_of(exc)
    return f"{exc.code().name}{'/' + reason if reason else ''}: {exc.details()}"
