"""Local bring-up (python -m mesh): infrastructure is running and ready, and `up` is idempotent.

`down` followed by `up` is exercised in test_bringup_restart.py (a separate module, so it runs after these).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import redis

from mesh import control
from mesh.paths import PATHS
from mesh.ports import load_ports

pytestmark = pytest.mark.integration

INFRA = ("nats", "valkey", "questdb", "opa")
REPO = Path(__file__).resolve().parents[2]


def _get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        assert resp.status == 200
        doc = json.loads(resp.read())
    assert isinstance(doc, dict)
    return doc


def _program_pids() -> dict[str, int]:
    from mesh.bringup import load

    return {name: info.pid for name, info in load().supervisor.all_info().items()}


@pytest.mark.parametrize("name", INFRA)
def test_infra_program_is_supervised_running_and_ready(mesh: None, name: str) -> None:
    assert control.is_running(), "supervisord is not running"
    assert control.is_running(name), f"{name} is {control.info(name)}"
    result = control.ready(name)
    assert result.ok, result.detail
    assert PATHS.log_file(name).exists()


def test_nats_jetstream_answers_jsz_and_fsyncs_every_write(mesh: None) -> None:
    jsz = _get_json(f"http://127.0.0.1:{load_ports().infra.nats_monitoring}/jsz")
    config = jsz["config"]
    assert isinstance(config, dict)
    # sync_interval: always -> an acknowledged message survives kill -9 of the server
    assert config["sync_always"] is True
    assert str(config["store_dir"]).startswith(str(PATHS.data_dir / "nats"))


def test_valkey_answers_ping(mesh: None) -> None:
    client = redis.Redis(host="127.0.0.1", port=load_ports().infra.valkey, socket_timeout=5)
    try:
        assert client.ping() is True
        info = client.info("server")
        assert Path(str(client.config_get("dir")["dir"])) == PATHS.data_dir / "valkey"
        assert info["tcp_port"] == load_ports().infra.valkey
    finally:
        client.close()


def test_questdb_runs_sql(mesh: None) -> None:
    doc = _get_json(f"http://127.0.0.1:{load_ports().infra.questdb_http}/exec?query=SELECT%201")
    assert doc["dataset"] == [[1]]


def test_opa_is_healthy_with_its_envoy_plugin(mesh: None) -> None:
    url = f"http://127.0.0.1:{load_ports().infra.opa_rest}/health?plugins"
    with urllib.request.urlopen(url, timeout=5) as resp:
        assert resp.status == 200


def test_install_is_fast_when_everything_is_present(mesh: None) -> None:
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "mesh", "install"], cwd=REPO, check=True, capture_output=True, timeout=60)
    assert time.monotonic() - t0 < 5  # ~0.3 s of work plus interpreter start-up


def test_up_twice_is_harmless(mesh: None) -> None:
    before = _program_pids()
    assert before and all(before.values()), before
    t0 = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "mesh", "up"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    elapsed = time.monotonic() - t0
    assert result.returncode == 0, result.stdout + result.stderr
    assert "started: nothing" in result.stdout
    assert elapsed < 20, f"a second `up` took {elapsed:.1f}s"
    assert _program_pids() == before
