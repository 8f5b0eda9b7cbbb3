"""The JWKS over HTTP at /.well-known/jwks.json, which Envoy's jwt_authn fetches."""

from __future__ import annotations

import json
from collections.abc import Callable

from aiohttp import web


class JwksHttpServer:
    def __init__(self, jwks: Callable[[], dict[str, list[dict[str, str]]]], host: str, port: int) -> None:
        self.jwks = jwks
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def _handle(self, _request: web.Request) -> web.Response:
        return web.Response(
            text=json.dumps(self.jwks()),
            content_type="application/json",
            headers={"Cache-Control": "max-age=30"},
        )

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/.well-known/jwks.json", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
