"""Domain errors: plain Python, no grpc. The error interceptor turns them into google.rpc.Status."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

ERROR_DOMAIN = "trade2026"


class ErrorKind(Enum):
    """What kind of failure this is; maps 1:1 onto a gRPC status code at the edge of a service."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    ABORTED = "ABORTED"
    UNAVAILABLE = "UNAVAILABLE"
    INTERNAL = "INTERNAL"


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request (becomes a google.rpc.BadRequest.FieldViolation)."""

    field: str
    description: str


@dataclass
class DomainError(Exception):
    """A failure with a machine-readable reason (ErrorInfo.reason, e.g. RISK_MAX_NOTIONAL)."""

    reason: str
    message: str
    kind: ErrorKind = ErrorKind.FAILED_PRECONDITION
    violations: tuple[FieldViolation, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


def invalid_argument(*violations: FieldViolation, reason: str = "VALIDATION_FAILED") -> DomainError:
    """A request that fails validation, with one violation per bad field."""
    text = "; ".join(f"{v.field}: {v.description}" for v in violations) or "invalid request"
    return DomainError(reason, text, ErrorKind.INVALID_ARGUMENT, tuple(violations))


class Validator:
    """Collects field violations, then raises them all at once."""

    def __init__(self) -> None:
        self.violations: list[FieldViolation] = []

    def require(self, ok: bool, field_name: str, description: str) -> None:
        if not ok:
            self.violations.append(FieldViolation(field_name, description))

    def raise_if_any(self) -> None:
        if self.violations:
            raise invalid_argument(*self.violations)
