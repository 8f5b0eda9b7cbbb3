"""The edge authorization policy: Rego unit tests, coverage, and RPC coverage of permissions.json."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"
OPA_BIN = os.environ.get("OPA_BIN", str(ROOT / ".cache" / "bin" / "opa-envoy-plugin"))
BUF_BIN = os.environ.get("BUF_BIN", str(ROOT / ".venv" / "bin" / "buf"))
MIN_COVERAGE = 90.0
TRADE_PACKAGE = re.compile(r"^trade\.[a-z0-9_]+\.v[0-9]+$")


def _require(binary: str) -> str:
    path = shutil.which(binary) or (binary if Path(binary).is_file() else None)
    if path is None:
        pytest.fail(f"{binary} not found: `make install` builds it")
    return path


def _opa(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_require(OPA_BIN), *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_opa_unit_tests_pass_with_coverage() -> None:
    proc = _opa("test", "policies/", "-v", "--coverage")
    assert proc.returncode == 0, f"opa test failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    report = json.loads(proc.stdout)
    total = float(report["coverage"])
    per_file = {name: float(f.get("coverage", 0.0)) for name, f in report["files"].items()}
    print(f"opa policy coverage: {total:.1f}% overall")
    for name, cov in sorted(per_file.items()):
        print(f"  {name}: {cov:.1f}%")
    assert total >= MIN_COVERAGE, f"coverage {total:.1f}% < {MIN_COVERAGE}%"
    for name, cov in per_file.items():
        assert cov >= MIN_COVERAGE, f"{name}: coverage {cov:.1f}% < {MIN_COVERAGE}%"


def test_opa_verbose_run_lists_tests() -> None:
    proc = _opa("test", "policies/", "-v")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"PASS: \d+/\d+", proc.stdout), proc.stdout
    assert "FAIL" not in proc.stdout


def test_opa_check_strict_and_fmt_clean() -> None:
    check = _opa("check", "--strict", "policies/")
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = _opa("fmt", "--list", "policies/")
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
    assert fmt.stdout.strip() == "", f"opa fmt would change: {fmt.stdout}"


@pytest.fixture(scope="module")
def api_methods(tmp_path_factory: pytest.TempPathFactory) -> dict[str, descriptor_pb2.MethodDescriptorProto]:
    """Every RPC of every trade.<svc>.v<n> service in the descriptor set built from proto/."""
    out = tmp_path_factory.mktemp("api") / "api.binpb"
    proc = subprocess.run(
        [_require(BUF_BIN), "build", "proto", "-o", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    fds = descriptor_pb2.FileDescriptorSet()
    fds.ParseFromString(out.read_bytes())
    methods = {
        f"/{f.package}.{svc.name}/{m.name}": m
        for f in fds.file
        if TRADE_PACKAGE.match(f.package)
        for svc in f.service
        for m in svc.method
    }
    assert methods, "no trade.*.v1 services found in proto/"
    return methods


def _permission_methods() -> dict[str, dict[str, object]]:
    doc = json.loads((POLICIES / "permissions.json").read_text())
    methods: dict[str, dict[str, object]] = doc["permissions"]["methods"]
    return methods


def test_every_rpc_has_a_permission_entry(api_methods: dict[str, object]) -> None:
    entries = _permission_methods()
    missing = sorted(set(api_methods) - set(entries))
    assert not missing, "RPCs without an entry in policies/permissions.json:\n" + "\n".join(missing)
    stale = sorted(set(entries) - set(api_methods))
    assert not stale, "permissions.json entries naming no RPC:\n" + "\n".join(stale)


def test_permission_entries_are_well_formed() -> None:
    roles = {"viewer", "trader", "risk_manager", "admin"}
    for path, entry in _permission_methods().items():
        if entry.get("public") is True:
            assert set(entry) == {"public"}, path
            continue
        granted = entry.get("roles")
        assert isinstance(granted, list) and granted, f"{path}: no roles"
        assert set(granted) <= roles, f"{path}: unknown roles {set(granted) - roles}"
        assert isinstance(entry.get("account_scoped"), bool), path
        assert isinstance(entry.get("instrument_scoped"), bool), path


def test_scoping_flags_match_protos(api_methods: dict[str, object]) -> None:
    """account_scoped/instrument_scoped are derived from the request messages (gen_permissions.py)."""
    proc = subprocess.run(
        [sys.executable, str(POLICIES / "gen_permissions.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
