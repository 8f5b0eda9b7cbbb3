"""compose.yml cannot run here (no Docker engine): check its structure, images and ports instead."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from mesh.edge.config import EdgeOptions, compose_options, render
from mesh.edge.envoy_bin import envoy_binary
from mesh.ports import load_ports

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "compose.yml").read_text())
OFFICIAL_IMAGES = {
    "envoy": "envoyproxy/envoy:",
    "opa": "openpolicyagent/opa:",
    "nats": "nats:",
    "valkey": "valkey/valkey:",
    "questdb": "questdb/questdb:",
    "clickhouse": "clickhouse/clickhouse-server:",
}


def _published(service: str) -> set[int]:
    return {int(str(p).split(":")[0]) for p in COMPOSE["services"][service].get("ports", [])}


def test_infrastructure_uses_the_official_images() -> None:
    for name, prefix in OFFICIAL_IMAGES.items():
        assert COMPOSE["services"][name]["image"].startswith(prefix), name
    assert COMPOSE["services"]["opa"]["image"].endswith("-envoy"), "OPA needs the Envoy ext_authz plugin build"


def test_python_services_share_one_image_built_from_the_dockerfile() -> None:
    python = [s for s in COMPOSE["services"].values() if "build" in s]
    assert python and {s["image"] for s in python} == {"trade2026/services:local"}
    assert (REPO / "Dockerfile").is_file()


def test_published_ports_match_the_port_table() -> None:
    ports = load_ports()
    assert _published("envoy") == {ports.edge["envoy"], ports.edge["envoy_admin"]}
    assert _published("nats") == {ports.infra["nats"], ports.infra["nats_monitoring"]}
    assert _published("valkey") == {ports.infra["valkey"]}
    assert _published("questdb") == {
        ports.infra["questdb_http"],
        ports.infra["questdb_ilp"],
        ports.infra["questdb_pg"],
    }
    assert _published("opa") == {ports.infra["opa_rest"], ports.infra["opa_envoy_grpc"]}
    assert _published("authn") == {ports.service("authn"), ports.aux["authn_jwks"]}


def test_dependencies_name_existing_services() -> None:
    names = set(COMPOSE["services"])
    for name, service in COMPOSE["services"].items():
        deps = service.get("depends_on") or {}
        for dep in deps if isinstance(deps, list) else deps.keys():
            assert dep in names, f"{name} depends on unknown {dep}"


def test_compose_envoy_config_is_fresh_and_valid(tmp_path: Path) -> None:
    committed = REPO / "mesh" / "edge" / "envoy.compose.yaml"
    expected = yaml.safe_dump(render(compose_options()), sort_keys=False)
    assert committed.read_text() == expected, (
        "run: python -m mesh.edge render --compose --out mesh/edge/envoy.compose.yaml"
    )
    local = tmp_path / "envoy.yaml"
    local.write_text(yaml.safe_dump(render(EdgeOptions()), sort_keys=False))
    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(local)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_every_service_the_local_mesh_runs_is_described_for_docker_hosts() -> None:
    from mesh.paths import PATHS
    from mesh.processes import discover_services

    ports = load_ports()
    runnable = {s for s in discover_services(PATHS) if s in ports.services}
    described = {
        cmd[-1].removeprefix("services.")
        for s in COMPOSE["services"].values()
        if (cmd := s.get("command")) and len(cmd) >= 3 and cmd[1] == "-m"
    }
    assert runnable <= described, f"missing in compose.yml: {sorted(runnable - described)}"
    for svc in runnable:
        name = svc.replace("_", "-")
        assert _published(name) >= {ports.service(svc)}, name
