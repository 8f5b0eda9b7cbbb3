"""authn settings (env prefix TRADE_, like every service: TRADE_ACCESS_TTL_S, TRADE_DB_PATH, ...)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from mesh.ports import load_ports
from services.runtime.settings import REPO_ROOT, ServiceSettings


class AuthnSettings(ServiceSettings):
    service_name: str = "authn"
    port: int = Field(default_factory=lambda: load_ports().service("authn"))
    jwks_port: int = Field(default_factory=lambda: load_ports().aux["authn_jwks"])
    db_path: Path = REPO_ROOT / "var" / "data" / "authn" / "authn.db"
    issuer: str = "trade2026-authn"
    audience: str = "trade2026-api"
    access_ttl_s: int = 900
    refresh_ttl_s: int = 86_400
    # At least the edge's JWKS cache duration (mesh/edge/config.py EdgeOptions.jwks_cache_s = 30) plus margin.
    key_propagation_s: int = 35
    revocation_sync_interval_s: float = 1.0
