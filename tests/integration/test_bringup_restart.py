"""`python -m mesh down` leaves no process and no port behind; `up` then restores the whole mesh.

Kept in its own module so it runs after test_bringup.py's read-only checks.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mesh import bringup, sysproc
from mesh.ports import load_ports
from mesh.supervisor import RUNNING_STATES

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _mesh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mesh", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_down_leaves_nothing_behind_then_up_restores(mesh: None) -> None:
    m = bringup.load()
    programs = m.supervisor.all_info()
    pids = {name: info.pid for name, info in programs.items() if info.pid}
    supervisord_pid = m.supervisor.pid()
    assert supervisord_pid and pids

    down = _mesh("down")
    assert down.returncode == 0, down.stdout + down.stderr

    left = {name: pid for name, pid in {**pids, "supervisord": supervisord_pid}.items() if sysproc.alive(pid)}
    assert not left, f"processes still alive after down: {left}"
    busy = sysproc.listeners(load_ports().all().values())
    assert not busy, f"ports still in use after down: {busy}"
    assert not m.supervisor.is_running()

    up = _mesh("up")
    assert up.returncode == 0, up.stdout + up.stderr
    after = m.supervisor.all_info()
    assert set(after) == set(programs)
    not_running = {name: info.state for name, info in after.items() if info.state not in RUNNING_STATES}
    assert not not_running, not_running
    for proc in m.programs:
        result = proc.probe.check()
        assert result.ok, f"{proc.name}: {result.detail}"
