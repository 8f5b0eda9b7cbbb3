"""Offset page tokens bound to the filters they were issued for."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from typing import TypeVar

from services.runtime.errors import FieldViolation, invalid_argument

T = TypeVar("T")
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def _fingerprint(filters: str) -> str:
    return hashlib.sha256(filters.encode()).hexdigest()[:16]


def page(items: Sequence[T], page_size: int, page_token: str, filters: str) -> tuple[list[T], str]:
    """One page of items and the token of the next one ("" on the last page)."""
    size = DEFAULT_PAGE_SIZE if page_size <= 0 else min(page_size, MAX_PAGE_SIZE)
    offset = _offset(page_token, filters) if page_token else 0
    chosen = list(items[offset : offset + size])
    end = offset + len(chosen)
    if end >= len(items):
        return chosen, ""
    token = base64.urlsafe_b64encode(json.dumps({"o": end, "f": _fingerprint(filters)}).encode()).decode()
    return chosen, token


def _offset(token: str, filters: str) -> int:
    try:
        body = json.loads(base64.urlsafe_b64decode(token.encode()))
        offset = int(body["o"])
        ok = body["f"] == _fingerprint(filters) and offset >= 0
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise invalid_argument(
            FieldViolation("page_token", "malformed, or issued for other filters"), reason="INVALID_PAGE_TOKEN"
        )
    return offset
