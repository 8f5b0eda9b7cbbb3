"""How long `make up` waits for each service to report ready, and supervisord for each to stop."""

from __future__ import annotations

from mesh import install, processes
from mesh.paths import PATHS
from mesh.ports import load_ports


def test_the_services_that_replay_orders_before_serving_get_a_longer_readiness_wait() -> None:
    programs = {p.name: p for p in processes.services(PATHS, load_ports())}
    assert programs["oms"].ready_timeout == programs["risk"].ready_timeout == processes.JOURNAL_REPLAY_READY_S
    assert programs["marketdata"].ready_timeout < processes.JOURNAL_REPLAY_READY_S


def test_the_oms_and_risk_get_time_to_write_their_snapshots_when_stopped() -> None:
    programs = {p.name: p for p in processes.services(PATHS, load_ports())}
    assert programs["oms"].stop_wait == programs["risk"].stop_wait == processes.SNAPSHOT_ON_STOP_WAIT_S
    assert programs["marketdata"].stop_wait < processes.SNAPSHOT_ON_STOP_WAIT_S


def test_down_stops_the_edge_first_and_the_infrastructure_after_the_services() -> None:
    order = processes.stop_order(processes.build(PATHS, load_ports(), install.locate(PATHS)))
    group_of = {name: i for i, names in enumerate(order) for name in names}
    assert group_of["envoy"] < group_of["oms"] == group_of["risk"] < group_of["opa"] < group_of["nats"]
    assert group_of["nats"] == group_of["questdb"] == len(order) - 1
