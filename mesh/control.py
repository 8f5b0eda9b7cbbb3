"""Small helpers for tests and scripts to control programs of a running mesh.

from mesh import control
control.stop("opa")       # returns once OPA has exited
...                       # calls through the edge must now be denied (fail closed)
control.start("opa")      # returns once OPA is ready again
"""

from __future__ import annotations

from mesh import bringup
from mesh.paths import PATHS
from mesh.ports import load_ports
from mesh.readiness import ProbeResult
from mesh.supervisor import RUNNING_STATES, ProgramInfo, Supervisor


def _supervisor() -> Supervisor:
    return Supervisor(PATHS, load_ports().infra.supervisor)


def is_running(name: str | None = None) -> bool:
    """Without a name: is supervisord up? With a name: is that program's process up?

    A program counts as running in supervisord's RUNNING and STARTING states (STARTING lasts the
    first second after a start); readiness is a separate question: ``ready(name)``.
    """
    sup = _supervisor()
    if name is None:
        return sup.is_running()
    info = sup.info(name)
    return info is not None and info.state in RUNNING_STATES


def info(name: str) -> ProgramInfo | None:
    """supervisord's view of one program (state, pid, ...), None when unknown or supervisord is down."""
    return _supervisor().info(name)


def pid(name: str) -> int:
    """The program's pid (0 when it is not running)."""
    found = info(name)
    return found.pid if found else 0


def stop(name: str) -> None:
    """Stop a program and wait until it has exited."""
    _supervisor().stop(name)


def start(name: str, *, wait: bool = True) -> None:
    """Start a program (rendering its config first) and, by default, wait until it is ready."""
    mesh = bringup.load()
    proc = mesh.program(name)
    current = mesh.supervisor.info(name)
    if current is None or current.state not in RUNNING_STATES:
        if proc.prepare is not None:
            proc.prepare()
        mesh.supervisor.start(name)
    if wait:
        bringup.wait_ready(mesh, [proc])


def restart(name: str, *, wait: bool = True) -> None:
    """Stop then start a program; by default wait until it is ready again."""
    stop(name)
    start(name, wait=wait)


def ready(name: str) -> ProbeResult:
    """Run the program's readiness probe once."""
    return bringup.load().program(name).probe.check()
