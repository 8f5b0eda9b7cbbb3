"""``python -m mesh``: bring the local mesh up and down under supervisord."""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from mesh import bringup, install
from mesh.paths import PATHS
from mesh.ports import load_ports
from mesh.processes import Tier, unported_services

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Local bring-up of the Trade2026 mesh.")
# Wide enough for addresses when not on a terminal (make, CI logs).
console = Console(width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 140)


def _report(msg: str) -> None:
    console.print(f"[dim]·[/dim] {msg}")


def _fail(exc: Exception) -> typer.Exit:
    err.print(f"[bold red]error:[/bold red] {exc}", highlight=False)
    return typer.Exit(1)


@app.command("install")
def install_cmd() -> None:
    """Install every missing binary into the git-ignored caches (fast when all present)."""
    t0 = time.monotonic()
    try:
        tools = install.ensure(PATHS, _report)
    except install.InstallError as exc:
        raise _fail(exc) from exc
    table = Table(title=f"tools ({time.monotonic() - t0:.1f}s)")
    table.add_column("tool")
    table.add_column("path")
    for field in dataclasses.fields(tools):
        table.add_row(field.name, str(getattr(tools, field.name)))
    console.print(table)


@app.command()
def up(
    infra_only: Annotated[bool, typer.Option("--infra-only", help="Only NATS, Valkey, QuestDB and OPA.")] = False,
    only: Annotated[list[str] | None, typer.Option("--only", help="Start just these programs.")] = None,
) -> None:
    """Install, start supervisord and every program in dependency order, waiting for readiness."""
    t0 = time.monotonic()
    try:
        mesh = bringup.load(ensure_tools=True, report=_report)
        result = bringup.up(mesh, max_tier=Tier.POLICY if infra_only else Tier.EDGE, only=only or (), report=_report)
    except (install.InstallError, bringup.BringUpError, RuntimeError) as exc:
        raise _fail(exc) from exc
    started = ", ".join(result.started) or "nothing (all running)"
    console.print(f"[green]mesh up[/green] in {time.monotonic() - t0:.1f}s — started: {started}")
    skipped = unported_services(mesh.paths, mesh.ports)
    if skipped:
        console.print(f"[yellow]not run (no port in mesh/ports.toml [services]):[/yellow] {', '.join(skipped)}")
    _print_endpoints(mesh)
    _print_users(mesh)


@app.command()
def down() -> None:
    """Stop every program and supervisord; verify no process or port is left behind."""
    try:
        result = bringup.down(report=_report)
    except RuntimeError as exc:
        raise _fail(exc) from exc
    if result.killed:
        console.print(f"[yellow]killed stragglers:[/yellow] {result.killed}")
    if not result.clean:
        for port, owners in sorted(result.foreign.items()):
            err.print(f"[red]port {port} still in use (not ours, left alone):[/red] {'; '.join(owners)}")
        raise typer.Exit(1)
    console.print(f"[green]mesh down[/green] in {result.seconds:.1f}s — no process left, all ports free")


@app.command()
def status() -> None:
    """Program states (supervisord) and readiness (probes)."""
    mesh = bringup.load()
    table = Table(title="mesh status")
    for col in ("program", "tier", "state", "pid", "ready", "endpoint", "detail"):
        table.add_column(col)
    rows = bringup.status(mesh)
    for row in rows:
        color = (
            "green" if row.state == "RUNNING" else "red" if row.state in {"FATAL", "BACKOFF", "EXITED"} else "yellow"
        )
        ready = "[green]yes[/green]" if row.ready.ok else "[red]no[/red]"
        endpoint = row.endpoints[0].address if row.endpoints else ""
        table.add_row(
            row.name,
            row.tier.name.lower(),
            f"[{color}]{row.state}[/{color}]",
            str(row.pid or ""),
            ready,
            endpoint,
            row.ready.detail if not row.ready.ok else row.uptime.rpartition("uptime ")[2],
        )
    console.print(table)
    if not mesh.supervisor.is_running():
        console.print("supervisord is not running: `python -m mesh up`")
    if not all(r.ready.ok for r in rows):
        raise typer.Exit(1)


@app.command()
def logs(
    name: Annotated[str | None, typer.Argument(help="Program name (default: a tail of every log).")] = None,
    lines: Annotated[int, typer.Option("-n", "--lines")] = 40,
    follow: Annotated[bool, typer.Option("-f", "--follow")] = False,
) -> None:
    """Show program logs from var/log."""
    if name is None:
        for log in sorted(PATHS.log_dir.glob("*.log")):
            console.rule(log.stem)
            console.print(bringup.log_tail(PATHS, log.stem, min(lines, 10)), highlight=False, markup=False)
        return
    log = PATHS.log_file(name)
    if not log.exists():
        names = ", ".join(sorted(p.stem for p in PATHS.log_dir.glob("*.log")))
        raise _fail(FileNotFoundError(f"no log {log} (have: {names or 'none'})"))
    console.print(bringup.log_tail(PATHS, name, lines), highlight=False, markup=False)
    if follow:
        _follow(log)


def _follow(log: Path) -> None:
    with log.open("rb") as fh:
        fh.seek(0, 2)
        try:
            while True:
                chunk = fh.read()
                if chunk:
                    console.out(chunk.decode(errors="replace"), end="", highlight=False)
                else:
                    time.sleep(0.3)
        except KeyboardInterrupt:
            return


def _print_endpoints(mesh: bringup.Mesh) -> None:
    table = Table(title="endpoints")
    for col in ("name", "address", "status"):
        table.add_column(col)
    for row in bringup.status(mesh):
        if row.ready.ok:
            ok = "[green]ready[/green]" if row.state == "RUNNING" else "[yellow]ready (not managed by mesh)[/yellow]"
        else:
            ok = f"[red]{row.state.lower()}[/red]"
        for ep in row.endpoints:
            table.add_row(ep.label, ep.address, ok)
    table.add_row("supervisord", f"http://127.0.0.1:{mesh.ports.infra.supervisor}", "[green]ready[/green]")
    console.print(table)


def _print_users(mesh: bringup.Mesh) -> None:
    users = bringup.demo_users(mesh.paths)
    if not users:
        return
    table = Table(title="demo users (mesh/demo_users.toml)")
    for col in ("username", "password", "roles", "accounts"):
        table.add_column(col)
    for u in users:
        roles = u.get("roles", [])
        accounts = u.get("accounts", [])
        table.add_row(
            str(u.get("username", "")),
            str(u.get("password", "")),
            ", ".join(map(str, roles)) if isinstance(roles, list) else str(roles),
            ", ".join(map(str, accounts)) if isinstance(accounts, list) else str(accounts),
        )
    console.print(table)
    trader = next((u for u in users if u.get("username") == "trader"), users[0])
    # trade.authn.v1.LoginRequest: oneof credential { PasswordCredential password = 1; ... }
    body = json.dumps(
        {"password": {"username": trader.get("username"), "password": trader.get("password")}}, separators=(",", ":")
    )
    grpcurl = mesh.tools.grpcurl or PATHS.cache_bin / "grpcurl"
    cmd = shlex.join(
        [
            str(Path(grpcurl).relative_to(mesh.paths.root))
            if Path(grpcurl).is_relative_to(mesh.paths.root)
            else str(grpcurl),
            "-plaintext",
            "-d",
            body,
            f"127.0.0.1:{load_ports().edge.envoy}",
            "trade.authn.v1.AuthnService/Login",
        ]
    )
    console.print("first call (through the edge):", style="bold")
    console.print(f"  {cmd}", highlight=False, markup=False, soft_wrap=True)


if __name__ == "__main__":
    app()
