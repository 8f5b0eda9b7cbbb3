"""Shared fixtures. Tiers: unit (no servers), integration/contract/e2e (the real local mesh)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import grpc
import pytest

from tests.support.edge import edge_channel


@pytest.fixture(scope="session")
def mesh() -> Iterator[None]:
    """The real mesh (NATS, Valkey, QuestDB, OPA, Envoy, services), started if not running.

    A mesh this session started is stopped at the end unless TRADE_KEEP_MESH=1.
    """
    from tests.support.mesh import ensure_mesh_up

    started = ensure_mesh_up()
    yield
    if started and os.environ.get("TRADE_KEEP_MESH") != "1":
        import subprocess
        import sys

        subprocess.run([sys.executable, "-m", "mesh", "down"], check=False, timeout=300)


@pytest.fixture(scope="session")
def edge(mesh: None) -> Iterator[grpc.Channel]:
    channel = edge_channel()
    yield channel
    channel.close()
