"""Typed settings from the environment (pydantic-settings). Each service subclasses ServiceSettings."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from mesh.ports import load_ports

REPO_ROOT = Path(__file__).resolve().parents[2]


def default_port(service: str) -> int:
    return load_ports().service(service)


def infra_url(scheme: str, name: str) -> str:
    return f"{scheme}://127.0.0.1:{load_ports().infra[name]}"


class ServiceSettings(BaseSettings):
    """Settings every service has. Env vars are prefixed TRADE_ (e.g. TRADE_LOG_LEVEL=DEBUG)."""

    model_config = SettingsConfigDict(env_prefix="TRADE_", frozen=True, extra="ignore")

    service_name: str = "service"
    host: str = "127.0.0.1"
    port: int = 0
    env: str = "local"
    log_level: str = "INFO"
    log_json: bool = True
    # gRPC server limits
    max_receive_message_bytes: int = 4 * 1024 * 1024
    max_send_message_bytes: int = 16 * 1024 * 1024
    keepalive_time_ms: int = 30_000
    keepalive_timeout_ms: int = 10_000
    shutdown_grace_s: float = 10.0
    # Default deadline of outgoing calls that set none.
    default_deadline_s: float = 2.0
    # Once started (state replayed), move every live object out of the collector's reach (gc.freeze): a full
    # collection then scans only what came later. The OMS's replayed book made one take 0.64-0.70 s, a pause of
    # every call and consumer of the process; after the freeze it took 1 ms.
    gc_freeze_after_start: bool = True
    nats_url: str = Field(default_factory=lambda: infra_url("nats", "nats"))
    valkey_url: str = Field(default_factory=lambda: infra_url("redis", "valkey"))
    opa_url: str = Field(default_factory=lambda: infra_url("http", "opa_rest"))
    data_dir: Path = REPO_ROOT / "var" / "data"
