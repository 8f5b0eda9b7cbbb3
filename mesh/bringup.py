"""The bring-up flows behind the CLI: up (ordered start + readiness), down (nothing left behind), status."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mesh import install, processes, sysproc
from mesh.configs import PrepareError
from mesh.paths import PATHS, Paths
from mesh.ports import Ports, load_ports
from mesh.processes import Hook, Process, Tier
from mesh.readiness import ProbeResult, check_many
from mesh.supervisor import FAILED_STATES, RUNNING_STATES, Supervisor, write_config

Reporter = Callable[[str], None]


class BringUpError(RuntimeError):
    """A step of the bring-up failed; the message names the process and shows its log tail."""


@dataclass(frozen=True, slots=True)
class Mesh:
    """Everything the flows need: paths, ports, tools, program definitions and the supervisor client."""

    paths: Paths
    ports: Ports
    tools: install.Tools
    programs: tuple[Process, ...]
    hooks: tuple[Hook, ...]
    supervisor: Supervisor

    def program(self, name: str) -> Process:
        for proc in self.programs:
            if proc.name == name:
                return proc
        raise KeyError(f"unknown program {name!r} (known: {', '.join(p.name for p in self.programs)})")


def load(paths: Paths = PATHS, *, ensure_tools: bool = False, report: Reporter = lambda _m: None) -> Mesh:
    ports = load_ports()
    tools = install.ensure(paths, report) if ensure_tools else install.locate(paths)
    return Mesh(
        paths=paths,
        ports=ports,
        tools=tools,
        programs=tuple(processes.build(paths, ports, tools)),
        hooks=tuple(processes.hooks(paths)),
        supervisor=Supervisor(paths, ports.infra.supervisor),
    )


def log_tail(paths: Paths, name: str, lines: int = 30) -> str:
    log = paths.log_file(name)
    try:
        with log.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            text = fh.read().decode(errors="replace")
    except OSError:
        return f"(no log at {log})"
    return "\n".join(text.splitlines()[-lines:])


# ------------------------------------------------------------------------------------------------ up


@dataclass(slots=True)
class UpResult:
    started: list[str] = field(default_factory=list)
    already_running: list[str] = field(default_factory=list)
    hooks_run: list[str] = field(default_factory=list)
    seconds: float = 0.0


def up(
    mesh: Mesh | None = None,
    *,
    max_tier: Tier = Tier.EDGE,
    only: Sequence[str] = (),
    report: Reporter = lambda _m: None,
) -> UpResult:
    """Install what is missing, start supervisord and every program tier by tier, waiting for readiness."""
    t0 = time.monotonic()
    mesh = mesh or load(ensure_tools=True, report=report)
    paths, sup = mesh.paths, mesh.supervisor
    missing = mesh.tools.missing()
    if missing:
        raise BringUpError(f"missing tools: {', '.join(missing)} (run `python -m mesh install`)")
    paths.ensure_dirs()
    write_config(paths, mesh.ports.infra.supervisor, mesh.programs)
    if sup.is_running():
        sup.update()
    else:
        _reap_stragglers(mesh, report)
        report("starting supervisord")
        sup.start_daemon()

    wanted = [p for p in mesh.programs if p.tier <= max_tier and (not only or p.name in only)]
    result = UpResult()
    infos = sup.all_info()
    for tier in sorted({p.tier for p in wanted}):
        batch = [p for p in wanted if p.tier == tier]
        for proc in batch:
            info = infos.get(proc.name)
            if info is not None and info.state in RUNNING_STATES:
                result.already_running.append(proc.name)
                continue
            _check_ports_free(mesh, proc)
            if proc.prepare is not None:
                try:
                    proc.prepare()
                except PrepareError as exc:
                    raise BringUpError(f"{proc.name}: {exc}") from exc
            report(f"starting {proc.name}")
            sup.start(proc.name)
            result.started.append(proc.name)
        wait_ready(mesh, batch, report=report)

    if max_tier >= Tier.EDGE and not only:
        result.hooks_run = _run_hooks(mesh, report)
    result.seconds = time.monotonic() - t0
    return result


def wait_ready(mesh: Mesh, procs: Sequence[Process], *, report: Reporter = lambda _m: None) -> None:
    """Poll probes until every process is ready; fail fast on FATAL, else after its ready_timeout."""
    start = time.monotonic()
    pending = {p.name: p for p in procs}
    last: dict[str, ProbeResult] = {}
    while pending:
        names = list(pending)
        results = check_many([pending[n].probe for n in names])
        for name, res in zip(names, results, strict=True):
            last[name] = res
            if res.ok:
                report(f"{name} ready")
                del pending[name]
        if not pending:
            return
        infos = mesh.supervisor.all_info()
        for name, proc in pending.items():
            info = infos.get(name)
            state = info.state if info else "MISSING"
            if state in FAILED_STATES or state in {"STOPPED", "MISSING"}:
                raise _not_ready(mesh, proc, f"it is {state} ({info.description if info else 'not configured'})")
            if time.monotonic() - start > proc.ready_timeout:
                raise _not_ready(mesh, proc, f"not ready after {proc.ready_timeout:.0f}s: {last[name].detail}")
        time.sleep(0.2)


def _not_ready(mesh: Mesh, proc: Process, why: str) -> BringUpError:
    log = mesh.paths.log_file(proc.name)
    return BringUpError(
        f"{proc.name} failed to become ready: {why}\nprobe: {proc.probe.describe()}\n"
        f"--- last lines of {log} ---\n{log_tail(mesh.paths, proc.name)}"
    )


def _check_ports_free(mesh: Mesh, proc: Process) -> None:
    busy = sysproc.listeners(proc.ports)
    if not busy:
        return
    owners = []
    for port, pids in sorted(busy.items()):
        who = ", ".join(f"pid {pid} ({sysproc.cmdline(pid)[:120]})" for pid in sorted(pids)) or "unknown process"
        owners.append(f"  port {port}: {who}")
    raise BringUpError(
        f"cannot start {proc.name}: its port(s) are already in use by a process this mesh does not manage:\n"
        + "\n".join(owners)
    )


def _reap_stragglers(mesh: Mesh, report: Reporter) -> list[int]:
    """Kill processes of ours (e.g. orphans of a killed supervisord) still holding one of our ports."""
    ours = {
        pid
        for pids in sysproc.listeners(mesh.ports.all().values()).values()
        for pid in pids
        if sysproc.is_ours(pid, mesh.paths.root)
    }
    if ours:
        report(f"stopping leftover processes: {sorted(ours)}")
        sysproc.terminate(ours)
    return sorted(ours)


def _hooks_stamp(mesh: Mesh) -> str:
    infos = mesh.supervisor.all_info()
    return json.dumps({n: i.pid for n, i in sorted(infos.items())})


def _run_hooks(mesh: Mesh, report: Reporter) -> list[str]:
    """Run post-start hooks unless they already ran against exactly these program instances."""
    if not mesh.hooks:
        return []
    stamp_file = mesh.paths.run_dir / "hooks.stamp"
    stamp = _hooks_stamp(mesh)
    if stamp_file.exists() and stamp_file.read_text() == stamp:
        return []
    ran = []
    env = {**os.environ, sysproc.MARKER: str(mesh.paths.root)}
    for hook in mesh.hooks:
        report(f"running {hook.name}")
        res = subprocess.run(
            list(hook.argv),
            cwd=mesh.paths.root,
            env={**env, **hook.env},
            capture_output=True,
            text=True,
            check=False,
        )
        if res.returncode != 0:
            out = (res.stdout + res.stderr).strip()[-3000:]
            raise BringUpError(f"post-start hook {hook.name!r} failed (rc={res.returncode}):\n{out}")
        if res.stdout.strip():
            report(f"{hook.name}: {res.stdout.strip().splitlines()[-1]}")
        ran.append(hook.name)
    stamp_file.write_text(stamp)
    return ran


# ------------------------------------------------------------------------------------------------ down


@dataclass(slots=True)
class DownResult:
    stopped: list[str] = field(default_factory=list)
    killed: list[int] = field(default_factory=list)
    foreign: dict[int, list[str]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        return not self.foreign


def down(mesh: Mesh | None = None, *, report: Reporter = lambda _m: None) -> DownResult:
    """Stop every program and supervisord; verify by pid and by port that nothing is left behind."""
    t0 = time.monotonic()
    mesh = mesh or load()
    sup, root = mesh.supervisor, mesh.paths.root
    result = DownResult()
    pids: set[int] = set()
    sup_pid = sup.pid()
    if sup.is_running():
        infos = sup.all_info()
        pids |= {i.pid for i in infos.values() if i.pid}
        result.stopped = [n for n, i in infos.items() if i.state in RUNNING_STATES]
        report(f"stopping {', '.join(result.stopped) or 'nothing'} and supervisord")
        sup.shutdown(processes.stop_order(mesh.programs))
    if sup_pid is not None and sysproc.alive(sup_pid) and sysproc.is_ours(sup_pid, root):
        pids.add(sup_pid)

    # 1) every pid we knew of must be gone
    leftovers = [p for p in pids if sysproc.alive(p) and sysproc.is_ours(p, root)]
    # 2) nothing of ours may still listen on a port of the table
    ports = mesh.ports.all()
    by_port = sysproc.listeners(ports.values())
    for pids_on_port in by_port.values():
        leftovers += [p for p in pids_on_port if sysproc.is_ours(p, root)]
    if leftovers:
        report(f"killing stragglers: {sorted(set(leftovers))}")
        sysproc.terminate(leftovers, timeout=5)
        result.killed = sorted(set(leftovers))

    names = {port: name for name, port in ports.items()}
    for port, pids_on_port in sysproc.listeners(ports.values()).items():
        result.foreign[port] = [f"{names[port]}: pid {p} {sysproc.cmdline(p)[:100]}" for p in sorted(pids_on_port)] or [
            f"{names[port]}: unknown owner"
        ]
    result.seconds = time.monotonic() - t0
    return result


# ------------------------------------------------------------------------------------------------ status


@dataclass(frozen=True, slots=True)
class ProgramStatus:
    name: str
    tier: Tier
    state: str
    pid: int
    uptime: str
    ready: ProbeResult
    endpoints: tuple[processes.Endpoint, ...]


def status(mesh: Mesh | None = None) -> list[ProgramStatus]:
    mesh = mesh or load()
    infos = mesh.supervisor.all_info()
    results = check_many([p.probe for p in mesh.programs])
    rows = []
    for proc, ready in zip(mesh.programs, results, strict=True):
        info = infos.get(proc.name)
        rows.append(
            ProgramStatus(
                name=proc.name,
                tier=proc.tier,
                state=info.state if info else ("NOT LOADED" if infos else "DOWN"),
                pid=info.pid if info else 0,
                uptime=info.description if info and info.state == "RUNNING" else "",
                ready=ready,
                endpoints=proc.endpoints,
            )
        )
    return rows


def demo_users(paths: Paths) -> list[dict[str, object]]:
    import tomllib

    path = paths.root / "mesh" / "demo_users.toml"
    if not path.exists():
        return []
    users = tomllib.loads(path.read_text()).get("users", [])
    return [u for u in users if isinstance(u, dict)]


def logs_dir(paths: Paths = PATHS) -> Path:
    return paths.log_dir
