"""Bringing the local mesh up for tests and poking its processes (through the supervisor)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import nats
from nats.js.errors import NotFoundError

from mesh import control
from mesh.ports import load_ports

REPO = Path(__file__).resolve().parents[2]


def edge_ready() -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{load_ports().edge['envoy_admin']}/ready", timeout=1) as r:
            return bool(r.read().strip() == b"LIVE")
    except OSError:
        return False


def ensure_mesh_up() -> bool:
    """Start the mesh unless it already runs; True when this call started it."""
    if control.is_running() and edge_ready():
        return False
    subprocess.run([sys.executable, "-m", "mesh", "up"], cwd=REPO, check=True, timeout=1800)
    return True


def stop_opa() -> None:
    control.stop("opa")


def restart_opa_and_wait() -> None:
    control.start("opa", wait=True)


def grpcurl_binary() -> str:
    return str(REPO / ".cache" / "bin" / "grpcurl")


def _stream_last_seq(stream: str) -> int:
    url = f"http://127.0.0.1:{load_ports().infra['nats_monitoring']}/jsz?streams=1"
    with urllib.request.urlopen(url, timeout=2) as resp:
        body = json.loads(resp.read())
    for account in body.get("account_details", []):
        for detail in account.get("stream_detail", []):
            if detail["name"] == stream:
                return int(detail["state"]["last_seq"])
    return 0


def wait_feed_flowing(limit_s: float = 30.0) -> None:
    """After a NATS disruption: block until the simulated venue's feed is stored in MD_RAW and MD again, so
    later tests start from a healthy mesh."""
    deadline = time.monotonic() + limit_s
    start = {s: _safe_last_seq(s) for s in ("MD_RAW", "MD")}
    while time.monotonic() < deadline:
        if all(_safe_last_seq(s) > seq for s, seq in start.items()):
            return
        time.sleep(0.2)
    raise AssertionError(f"market data did not flow again within {limit_s}s after the disruption")


def _safe_last_seq(stream: str) -> int:
    try:
        return _stream_last_seq(stream)
    except OSError:
        return 0


# The mesh's exeq consumers on ORDERS (services/exeq/settings.py); both start at new messages when created.
MESH_EXEQ_CONSUMERS = (("ORDERS", "exeq-router"), ("ORDERS", "exeq-children"))


@contextlib.contextmanager
def mesh_copy_stopped(*names: str, forget: Sequence[tuple[str, str]] = ()) -> Iterator[None]:
    """For tests that run their own in-process copy of a service against the shared NATS: the mesh's copy is
    stopped meanwhile (otherwise both act on the same subjects, e.g. the mesh's exeq would route the test's orders
    to the real venue), then started again and awaited ready.

    ``forget`` lists (stream, durable) consumers of the mesh's copy to delete before it restarts: created anew at
    the stream's end, they skip what the test published (which the test's own copy handled)."""
    for name in names:
        control.stop(name)
    try:
        yield
    finally:
        if forget:
            asyncio.run(_delete_consumers(forget))
        for name in names:
            control.start(name, wait=True)


async def _delete_consumers(consumers: Sequence[tuple[str, str]]) -> None:
    nc = await nats.connect(f"nats://127.0.0.1:{load_ports().infra['nats']}", name="tests-forget")
    try:
        js = nc.jetstream()
        for stream, durable in consumers:
            with contextlib.suppress(NotFoundError):
                await js.delete_consumer(stream, durable)
    finally:
        await nc.close()
