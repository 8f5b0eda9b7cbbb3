"""The compliance policy's own Rego tests (opa test) pass with full coverage."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
POLICY_DIR = ROOT / "services" / "risk" / "policy"
OPA_BIN = Path(os.environ.get("OPA_BIN", str(ROOT / ".cache" / "bin" / "opa-envoy-plugin")))


def test_compliance_policy_tests_pass_with_full_coverage() -> None:
    if not OPA_BIN.is_file():
        pytest.fail(f"{OPA_BIN} not found: `make install` builds it")
    proc = subprocess.run(
        [str(OPA_BIN), "test", str(POLICY_DIR), "--coverage"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert float(json.loads(proc.stdout)["coverage"]) == 100.0
