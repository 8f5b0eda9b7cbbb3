"""Pushes revocations into OPA's data (`data.revocation`) over its REST API; resyncs after an OPA restart."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
import structlog

from services.authn.domain.model import Revocations

log = structlog.get_logger("opa")


def revocation_document(revocations: Revocations) -> dict[str, object]:
    return {"loaded": True, "jtis": revocations.jtis, "subjects": revocations.subjects}


class OpaRevocationSink:
    """PUT /v1/data/revocation. Until the first PUT lands, the policy denies every authenticated call."""

    def __init__(self, opa_url: str, timeout_s: float = 1.0) -> None:
        self.url = opa_url.rstrip("/") + "/v1/data/revocation"
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def publish(self, revocations: Revocations) -> None:
        async with self._client().put(self.url, json=revocation_document(revocations)) as resp:
            if resp.status >= 300:
                raise RuntimeError(f"OPA rejected revocations: HTTP {resp.status}")

    async def is_loaded(self) -> bool:
        async with self._client().get(self.url + "/loaded") as resp:
            body = await resp.json()
            return resp.status == 200 and body.get("result") is True

    async def keep_synced(self, current: Callable[[], Revocations], interval_s: float = 1.0) -> None:
        """Re-push whenever OPA has lost the document (e.g. it restarted)."""
        reachable = True
        while True:
            try:
                if not await self.is_loaded():
                    await self.publish(current())
                    log.info("opa.revocations_pushed")
                reachable = True
            except (aiohttp.ClientError, TimeoutError, RuntimeError) as exc:
                if reachable:
                    log.warning("opa.unreachable", error=repr(exc))
                reachable = False
            await asyncio.sleep(interval_s)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
