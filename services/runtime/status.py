"""Building google.rpc.Status (with ErrorInfo / BadRequest details) and reading it back."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from services.runtime.errors import ERROR_DOMAIN, DomainError, ErrorKind

STATUS_DETAILS_KEY = "grpc-status-details-bin"

_CODES: dict[ErrorKind, grpc.StatusCode] = {kind: getattr(grpc.StatusCode, kind.value) for kind in ErrorKind}


def grpc_code(kind: ErrorKind) -> grpc.StatusCode:
    return _CODES[kind]


def to_status(error: DomainError) -> status_pb2.Status:
    """The google.rpc.Status for a domain error: ErrorInfo always, BadRequest when fields are named."""
    code = grpc_code(error.kind)
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata)
    details = [_pack(info)]
    if error.violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                for v in error.violations
            ]
        )
        details.append(_pack(bad))
    return status_pb2.Status(code=code.value[0], message=error.message, details=details)


def _pack(msg: error_details_pb2.ErrorInfo | error_details_pb2.BadRequest) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(msg)
    return packed


def error_info(status: status_pb2.Status) -> error_details_pb2.ErrorInfo | None:
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    return None


def bad_request(status: status_pb2.Status) -> error_details_pb2.BadRequest | None:
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            return bad
    return None


def status_from_trailers(trailing: object) -> status_pb2.Status | None:
    """The rich status carried in a call's trailing metadata, if any."""
    for key, value in trailing or ():  # type: ignore[attr-defined]
        if key == STATUS_DETAILS_KEY:
            return status_pb2.Status.FromString(value)
    return None


__all__ = ["bad_request", "code_pb2", "error_info", "grpc_code", "status_from_trailers", "to_status"]
