"""Compliance decisions from OPA (opa-python-client): the policy and its data are loaded by risk itself and
re-loaded when OPA lost them (restart); decisions are cached briefly; anything but an answer fails closed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import structlog
from opa_client.errors import ConnectionsError, PolicyNotFoundError, RegoParseError
from opa_client.opa_async import AsyncOpaClient

from services.risk.domain.model import ComplianceConfig, ComplianceInput, Violation
from services.risk.domain.ports import ComplianceUnavailable

log = structlog.get_logger("risk.opa")

POLICY_ID = "trade_compliance"
PACKAGE = "trade.compliance"
DECISION_RULE = "decision"
DATA_ROOT = "risk_compliance"
POLICY_FILE = Path(__file__).resolve().parents[1] / "policy" / "compliance.rego"

_CLIENT_ERRORS = (aiohttp.ClientError, TimeoutError, ConnectionsError, OSError, ValueError)


def _client(opa_url: str, timeout_s: float, retries: int) -> AsyncOpaClient:
    parts = urlsplit(opa_url)
    return AsyncOpaClient(
        host=parts.hostname or "127.0.0.1", port=parts.port or 8181, timeout=timeout_s, retries=retries
    )


def data_documents(config: ComplianceConfig) -> list[tuple[str, dict[str, object]]]:
    """(path under data/, document) pairs, one per entry, so instances with other entries never clobber them."""
    docs: list[tuple[str, dict[str, object]]] = []
    for symbol, why in sorted(config.restricted_symbols.items()):
        docs.append((f"{DATA_ROOT}/restricted_symbols/{quote(symbol, safe='')}", {"reason": why}))
    for account, symbols in sorted(config.account_restricted_symbols.items()):
        docs.append((f"{DATA_ROOT}/account_restrictions/{quote(account, safe='')}", {"symbols": list(symbols)}))
    for symbol, window in sorted(config.trading_windows.items()):
        docs.append(
            (
                f"{DATA_ROOT}/trading_windows/{quote(symbol, safe='')}",
                {
                    "start_minute": window.start_minute,
                    "end_minute": window.end_minute,
                    "weekdays": list(window.weekdays),
                },
            )
        )
    return docs


class OpaCompliance:
    def __init__(
        self,
        opa_url: str,
        config: ComplianceConfig,
        timeout_s: float = 0.2,
        cache_ttl_s: float = 0.0,
        policy_text: str | None = None,
    ) -> None:
        self._opa_url = opa_url
        self._config = config
        self._timeout_s = timeout_s
        self._cache_ttl_ns = int(cache_ttl_s * 1e9)
        self._cache: dict[tuple[str, str, str, str], tuple[int, list[Violation]]] = {}
        self._policy = policy_text if policy_text is not None else POLICY_FILE.read_text()
        self._query: AsyncOpaClient | None = None
        self._admin: AsyncOpaClient | None = None

    async def _clients(self) -> tuple[AsyncOpaClient, AsyncOpaClient]:
        if self._query is None or self._admin is None:
            self._query = _client(self._opa_url, self._timeout_s, retries=0)
            self._admin = _client(self._opa_url, 5.0, retries=2)
            await self._query._init_session()
            await self._admin._init_session()
        return self._query, self._admin

    async def load(self) -> None:
        """PUT the policy and every data entry."""
        _, admin = await self._clients()
        await admin.update_policy_from_string(self._policy, POLICY_ID, rego_compat=False)
        for path, document in data_documents(self._config):
            await admin.update_or_create_data(document, path)
        log.info("opa.compliance_loaded", policy=POLICY_ID, entries=len(data_documents(self._config)))

    async def is_loaded(self) -> bool:
        _, admin = await self._clients()
        try:
            await admin.get_policy(POLICY_ID)
        except PolicyNotFoundError:
            return False
        return True

    async def keep_loaded(self, interval_s: float = 2.0) -> None:
        """Re-load after OPA lost the policy (restart); never raises."""
        reachable = True
        while True:
            try:
                if not await self.is_loaded():
                    await self.load()
                reachable = True
            except (*_CLIENT_ERRORS, RegoParseError) as exc:
                if reachable:
                    log.warning("opa.unreachable", error=repr(exc))
                reachable = False
            await asyncio.sleep(interval_s)

    async def evaluate(self, request: ComplianceInput) -> Sequence[Violation]:
        key = (request.account_id, request.symbol, request.side.value, request.strategy_id)
        now = time.monotonic_ns()
        if self._cache_ttl_ns:
            hit = self._cache.get(key)
            if hit is not None and hit[0] > now:
                return hit[1]
        query, _ = await self._clients()
        try:
            answer = await query.query_rule(request.document(), PACKAGE, DECISION_RULE)
        except _CLIENT_ERRORS as exc:
            raise ComplianceUnavailable(f"OPA did not answer ({type(exc).__name__})") from exc
        violations = _violations(answer)
        if self._cache_ttl_ns:
            self._cache[key] = (now + self._cache_ttl_ns, violations)
        return violations

    async def close(self) -> None:
        for client in (self._query, self._admin):
            if client is not None:
                await client.close_connection()
        self._query = self._admin = None


def _violations(answer: Mapping[str, Any]) -> list[Violation]:
    result = answer.get("result")
    if not isinstance(result, dict) or not isinstance(result.get("violations"), list):
        raise ComplianceUnavailable("the compliance policy is not loaded in OPA")
    out = []
    for item in result["violations"]:
        if isinstance(item, dict) and isinstance(item.get("reason"), str):
            out.append(Violation(item["reason"], str(item.get("message", ""))))
    return sorted(out, key=lambda v: (v.reason, v.message))
