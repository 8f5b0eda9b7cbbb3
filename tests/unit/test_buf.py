"""The contracts in proto/ are lint-clean, format-clean and (against main) not breaking."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUF = ROOT / ".venv" / "bin" / "buf"


def _buf(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BUF), *args],
        cwd=ROOT,
        env={**os.environ, "BUF_CACHE_DIR": str(ROOT / ".cache" / "buf")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _git_ok(*args: str) -> bool:
    proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return proc.returncode == 0


def _main_has_contracts() -> bool:
    """True when a local `main` branch exists and already holds buf.yaml and proto/."""
    return (
        _git_ok("rev-parse", "--verify", "--quiet", "main^{commit}")
        and _git_ok("cat-file", "-e", "main:buf.yaml")
        and _git_ok("cat-file", "-e", "main:proto")
    )


def test_buf_lint_clean() -> None:
    proc = _buf("lint")
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def test_buf_format_clean() -> None:
    proc = _buf("format", "--diff", "--exit-code")
    assert proc.returncode == 0, "run `.venv/bin/buf format -w`:\n" + proc.stdout + proc.stderr


def test_buf_no_breaking_change_against_main() -> None:
    # A breaking change must be a new vN package (DESIGN.md), so proto/ is
    # compared with the committed main branch. That needs a main branch that
    # already holds the contracts: on the very first commit (or in a checkout
    # without a local main) there is nothing to compare against, and the test
    # then asserts what it can — lint — instead of skipping.
    if not _main_has_contracts():
        proc = _buf("lint")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return
    proc = _buf("breaking", "proto", "--against", ".git#branch=main,subdir=proto")
    assert proc.returncode == 0, (
        "breaking change against main (make a new vN package instead):\n" + proc.stdout + proc.stderr
    )
