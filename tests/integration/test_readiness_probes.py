"""Readiness probes against the running infrastructure."""

from __future__ import annotations

import pytest

from mesh.ports import load_ports
from mesh.readiness import LOCALHOST, NatsClientProbe

pytestmark = pytest.mark.usefixtures("mesh")


def test_nats_client_probe_sees_a_connected_service_and_not_an_absent_one() -> None:
    monitoring = load_ports().infra["nats_monitoring"]
    assert NatsClientProbe(LOCALHOST, monitoring, "normalizer").check().ok
    absent = NatsClientProbe(LOCALHOST, monitoring, "feed-that-is-not-running").check()
    assert not absent.ok and "feed-that-is-not-running" in absent.detail
