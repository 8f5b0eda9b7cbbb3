"""gen/ is exactly what `make gen` (tools/gen.sh) produces from proto/.

The stale check regenerates everything into a temporary directory with the same
script (GEN_OUT override) and compares it file by file with the committed gen/.
The other tests check that the committed output is usable in each language.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GEN = ROOT / "gen"
LANGS = ("python", "ts", "go")
# Produced by using the generated code, never by the generator.
IGNORED_DIRS = {"__pycache__", "node_modules", ".mypy_cache"}
IGNORED_SUFFIXES = (".pyc",)


def _tree(base: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for lang in LANGS:
        top = base / lang
        if not top.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames if d not in IGNORED_DIRS)
            for name in filenames:
                if name.endswith(IGNORED_SUFFIXES):
                    continue
                path = Path(dirpath) / name
                files[path.relative_to(base).as_posix()] = path.read_bytes()
    return files


def _go_env() -> dict[str, str]:
    cache = ROOT / ".cache"
    return {
        **os.environ,
        "GOPATH": str(cache / "go"),
        "GOMODCACHE": str(cache / "go" / "pkg" / "mod"),
        "GOCACHE": str(cache / "go-build"),
        "GOFLAGS": "-mod=mod",
        "GOTOOLCHAIN": "local",
    }


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run tools/gen.sh into a temp dir (this also installs the generators)."""
    out = tmp_path_factory.mktemp("gen")
    env = {**os.environ, "GEN_OUT": str(out), "GEN_GO_BUILD": "0"}
    proc = subprocess.run(
        ["bash", str(ROOT / "tools" / "gen.sh")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, f"tools/gen.sh failed:\n{proc.stdout}\n{proc.stderr}"
    return out


def test_generated_code_is_fresh(regenerated: Path) -> None:
    committed = _tree(GEN)
    fresh = _tree(regenerated)
    missing = sorted(set(fresh) - set(committed))
    extra = sorted(set(committed) - set(fresh))
    changed = sorted(p for p in set(fresh) & set(committed) if fresh[p] != committed[p])
    problems = []
    if missing:
        problems.append("missing from gen/ (generated but not present):\n  " + "\n  ".join(missing))
    if extra:
        problems.append("extra in gen/ (present but no longer generated):\n  " + "\n  ".join(extra))
    if changed:
        problems.append("changed (differs from a fresh generation):\n  " + "\n  ".join(changed))
    assert not problems, "gen/ is stale; run `make gen` and commit the result.\n" + "\n".join(problems)


def test_python_modules_import() -> None:
    modules = sorted(
        p.relative_to(GEN / "python").with_suffix("").as_posix().replace("/", ".")
        for p in (GEN / "python" / "trade").rglob("*_pb2*.py")
    )
    assert "trade.oms.v1.oms_pb2" in modules
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", code, *modules],
        env={**os.environ, "PYTHONPATH": str(GEN / "python"), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_go_module_builds() -> None:
    go = shutil.which("go") or "/usr/local/go/bin/go"
    proc = subprocess.run(
        [go, "build", "./..."],
        cwd=GEN / "go",
        env=_go_env(),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_typescript_typechecks(regenerated: Path) -> None:
    # `regenerated` guarantees node_modules (typescript, @bufbuild/protobuf) is installed.
    tsc = ROOT / "node_modules" / ".bin" / "tsc"
    proc = subprocess.run(
        [str(tsc), "-p", str(GEN / "ts" / "tsconfig.json")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
