"""Linux /proc helpers: who listens on a port, whether a pid belongs to this mesh, terminating stragglers."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

# Every supervised program carries this variable (value: the repo root), so `down` can recognise
# its own stragglers without touching anyone else's processes.
MARKER = "TRADE_MESH_ROOT"

_LISTEN = "0A"


def _listening_inodes(ports: set[int]) -> dict[int, int]:
    """socket inode -> port, for TCP sockets in LISTEN state on one of ``ports``."""
    found: dict[int, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) < 10 or cols[3] != _LISTEN:
                continue
            port = int(cols[1].rsplit(":", 1)[1], 16)
            if port in ports:
                found[int(cols[9])] = port
    return found


def listeners(ports: Iterable[int]) -> dict[int, set[int]]:
    """port -> pids with a listening socket on it (only ports that have listeners)."""
    inodes = _listening_inodes(set(ports))
    result: dict[int, set[int]] = {}
    if not inodes:
        return result
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fds = list((proc / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                port = inodes.get(int(target[8:-1]))
                if port is not None:
                    result.setdefault(port, set()).add(int(proc.name))
    # A socket whose owner we cannot see (another namespace) still makes the port busy.
    for port in set(inodes.values()) - set(result):
        result[port] = set()
    return result


def alive(pid: int) -> bool:
    """True while the pid exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def is_ours(pid: int, root: Path) -> bool:
    """The pid was started by this mesh (its environment carries MARKER=<repo root>)."""
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"{MARKER}={root}".encode() in env


def terminate(pids: Iterable[int], timeout: float = 10.0) -> list[int]:
    """SIGTERM (to the process group when the pid leads one), then SIGKILL after ``timeout``.

    Returns the pids that were still alive and had to be killed.
    """
    pending = [p for p in set(pids) if alive(p)]
    for pid in pending:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pending):
        time.sleep(0.1)
    killed = [p for p in pending if alive(p)]
    for pid in killed:
        _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(alive(p) for p in killed):
        time.sleep(0.05)
    return killed


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass
