"""Bringing the local mesh up for tests and poking its processes (through the supervisor)."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

from mesh import control
from mesh.ports import load_ports

REPO = Path(__file__).resolve().parents[2]


def edge_ready() -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{load_ports().edge['envoy_admin']}/ready", timeout=1) as r:
            return bool(r.read().strip() == b"LIVE")
    except OSError:
        return False


def ensure_mesh_up() -> bool:
    """Start the mesh unless it already runs; True when this call started it."""
    if control.is_running() and edge_ready():
        return False
    subprocess.run([sys.executable, "-m", "mesh", "up"], cwd=REPO, check=True, timeout=1800)
    return True


def stop_opa() -> None:
    control.stop("opa")


def restart_opa_and_wait() -> None:
    control.start("opa", wait=True)


def grpcurl_binary() -> str:
    return str(REPO / ".cache" / "bin" / "grpcurl")
