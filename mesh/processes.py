"""Every program of the local mesh, defined once: argv, env, readiness probe and start tier."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

from mesh import configs
from mesh.install import Tools
from mesh.paths import Paths
from mesh.ports import Ports
from mesh.readiness import (
    LOCALHOST,
    AllOf,
    GrpcHealthProbe,
    HttpProbe,
    NatsClientProbe,
    Probe,
    QuestDbSqlProbe,
    RedisPingProbe,
)

# QuestDB's worker pools busy-poll after each piece of work: up to nap.threshold (7000) loops of CPU pauses, then
# 1 ms naps until sleep.threshold (10000), then 10 ms sleeps. With ticks and orders arriving every few ms its
# threads hardly ever reach the naps. On the 2-core box a worker now naps after 100 empty loops and sleeps after
# 1000 (a job waits at most 10 ms when its pool is asleep), and the pools this mesh barely uses get one thread.
_QDB_POOLS = (
    "SHARED_WORKER",
    "HTTP_WORKER",
    "PG_WORKER",
    "WAL_APPLY_WORKER",
    "LINE_TCP_IO_WORKER",
    "LINE_TCP_WRITER_WORKER",
    "VIEW_COMPILER_WORKER",
    "MAT_VIEW_REFRESH_WORKER",
    "EXPORT_WORKER",
)
QUESTDB_IDLE_WORKERS: dict[str, str] = {
    **{f"QDB_{pool}_NAP_THRESHOLD": "100" for pool in _QDB_POOLS},
    **{f"QDB_{pool}_SLEEP_THRESHOLD": "1000" for pool in _QDB_POOLS},
    "QDB_WAL_APPLY_WORKER_COUNT": "1",
    "QDB_VIEW_COMPILER_WORKER_COUNT": "1",
    "QDB_MAT_VIEW_REFRESH_WORKER_COUNT": "1",
}


class Tier(IntEnum):
    """Start order: each tier is started and must be ready before the next one starts."""

    INFRA = 1
    POLICY = 2
    SERVICES = 3
    EDGE = 4


@dataclass(frozen=True, slots=True)
class Endpoint:
    label: str
    address: str


@dataclass(frozen=True, slots=True)
class Process:
    """One supervised program."""

    name: str
    argv: tuple[str, ...]
    tier: Tier
    probe: Probe
    env: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[int, ...] = ()
    endpoints: tuple[Endpoint, ...] = ()
    ready_timeout: float = 60.0
    stop_wait: int = 10
    # Renders config files the program reads; run just before the program is (re)started.
    prepare: Callable[[], object] | None = None


@dataclass(frozen=True, slots=True)
class Hook:
    """A one-shot command run after every tier is ready (e.g. seeding demo users)."""

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)


def _required(path: Path | None, what: str) -> str:
    return str(path) if path is not None else f"/missing/{what}"


def infra(paths: Paths, ports: Ports, tools: Tools) -> list[Process]:
    p = ports.infra
    qdb_root = paths.data_dir / "questdb"
    nats_conf = paths.run_dir / "nats.conf"
    valkey_conf = paths.run_dir / "valkey.conf"
    return [
        Process(
            name="nats",
            argv=(_required(tools.nats_server, "nats-server"), "-c", str(nats_conf)),
            tier=Tier.INFRA,
            probe=HttpProbe(f"http://{LOCALHOST}:{p.nats_monitoring}/healthz?js-enabled-only=true"),
            ports=(p.nats, p.nats_monitoring),
            endpoints=(
                Endpoint("nats", f"nats://{LOCALHOST}:{p.nats}"),
                Endpoint("nats monitoring", f"http://{LOCALHOST}:{p.nats_monitoring}"),
            ),
            ready_timeout=30,
            prepare=lambda: configs.nats_conf(paths, ports),
        ),
        Process(
            name="valkey",
            argv=(_required(tools.redis_server, "redis-server"), str(valkey_conf)),
            tier=Tier.INFRA,
            probe=RedisPingProbe(LOCALHOST, p.valkey),
            ports=(p.valkey,),
            endpoints=(Endpoint("valkey", f"redis://{LOCALHOST}:{p.valkey}"),),
            ready_timeout=30,
            prepare=lambda: configs.valkey_conf(paths, ports),
        ),
        Process(
            name="questdb",
            argv=(
                _required(tools.java, "java"),
                "-Xms256m",
                "-Xmx1g",
                "-XX:+UseParallelGC",
                "-XX:ParallelGCThreads=2",
                f"-XX:ErrorFile={paths.log_dir / 'questdb-hs_err_%p.log'}",
                "-p",
                _required(tools.questdb_jar, "questdb.jar"),
                "-m",
                "io.questdb/io.questdb.ServerMain",
                "-d",
                str(qdb_root),
            ),
            tier=Tier.INFRA,
            env={
                "QDB_HTTP_BIND_TO": f"{LOCALHOST}:{p.questdb_http}",
                "QDB_LINE_TCP_NET_BIND_TO": f"{LOCALHOST}:{p.questdb_ilp}",
                "QDB_PG_NET_BIND_TO": f"{LOCALHOST}:{p.questdb_pg}",
                # the "min" health server (9003) is not in ports.toml: /exec on 9000 is our probe
                "QDB_HTTP_MIN_ENABLED": "false",
                "QDB_LINE_UDP_ENABLED": "false",
                "QDB_TELEMETRY_ENABLED": "false",
                "QDB_SHARED_WORKER_COUNT": "2",
                "QDB_RAM_USAGE_LIMIT_BYTES": "2g",
                **QUESTDB_IDLE_WORKERS,
            },
            # "/" answers a 301 without a body length (urllib waits for EOF): probe the console page.
            probe=AllOf(
                (
                    HttpProbe(f"http://{LOCALHOST}:{p.questdb_http}/index.html"),
                    QuestDbSqlProbe(LOCALHOST, p.questdb_http),
                )
            ),
            ports=(p.questdb_http, p.questdb_ilp, p.questdb_pg),
            endpoints=(
                Endpoint("questdb http", f"http://{LOCALHOST}:{p.questdb_http}"),
                Endpoint("questdb ilp", f"tcp://{LOCALHOST}:{p.questdb_ilp}"),
                Endpoint("questdb pg", f"postgresql://admin:quest@{LOCALHOST}:{p.questdb_pg}/qdb"),
            ),
            ready_timeout=120,
            stop_wait=20,
            prepare=lambda: qdb_root.mkdir(parents=True, exist_ok=True),
        ),
    ]


def opa(paths: Paths, ports: Ports, tools: Tools) -> Process:
    p = ports.infra
    conf = paths.run_dir / "opa-config.yaml"

    def prepare() -> None:
        configs.opa_config(paths, ports, configs.api_descriptor(paths))

    return Process(
        name="opa",
        argv=(
            _required(tools.opa, "opa-envoy-plugin"),
            "run",
            "--server",
            "--addr",
            f"{LOCALHOST}:{p.opa_rest}",
            "--config-file",
            str(conf),
            "--ignore=*_test.rego",
            "--ignore=*.py",
            "--disable-telemetry",
            # info logs every REST request (authn polls revocations each second): keep errors only
            "--log-level",
            "error",
            str(paths.root / "policies"),
        ),
        # Every ext_authz decision allocates (its input as an AST): a collection per 4x live heap instead of 2x
        # raised the edge's WhoAmI ceiling from 870 to 1012 calls/s (bench.edge_overhead, means of 4 and 3 runs).
        env={"GOGC": "400"},
        tier=Tier.POLICY,
        probe=HttpProbe(f"http://{LOCALHOST}:{p.opa_rest}/health?plugins"),
        ports=(p.opa_rest, p.opa_envoy_grpc),
        endpoints=(
            Endpoint("opa rest", f"http://{LOCALHOST}:{p.opa_rest}"),
            Endpoint("opa ext_authz grpc", f"{LOCALHOST}:{p.opa_envoy_grpc}"),
        ),
        ready_timeout=60,
        prepare=prepare,
    )


def discover_services(paths: Paths) -> list[str]:
    """Package dirs services/<svc>/ with a __main__.py (services/runtime is the shared library)."""
    root = paths.services_dir
    if not root.is_dir():
        return []
    return sorted(
        d.name
        for d in root.iterdir()
        if d.is_dir() and d.name != "runtime" and not d.name.startswith((".", "_")) and (d / "__main__.py").is_file()
    )


# Which venue feeds market data: "prism" (the simulated exchange, default) or "binance" (the real Binance spot
# public streams; needs internet). Read when the mesh is brought up: `TRADE_MD_FEED=binance make up`.
MD_FEEDS = ("prism", "binance")


def md_feed() -> str:
    feed = os.environ.get("TRADE_MD_FEED", "prism").strip().lower() or "prism"
    if feed not in MD_FEEDS:
        raise ValueError(f"TRADE_MD_FEED={feed!r}: choose one of {', '.join(MD_FEEDS)}")
    return feed


def feed_handlers(paths: Paths, ports: Ports) -> list[Process]:
    """The Binance feed handler when it is the selected market-data feed (it serves no port: probed at NATS)."""
    if md_feed() != "binance":
        return []
    return [
        Process(
            name="feed_binance",
            argv=(str(paths.python), "-m", "services.feeds.binance"),
            tier=Tier.SERVICES,
            env={"TRADE_ENV": "local", "PYTHONUNBUFFERED": "1", "TRADE_BINANCE_ENABLED": "1"},
            probe=NatsClientProbe(LOCALHOST, ports.infra["nats_monitoring"], "feed-binance"),
            ready_timeout=90,
            stop_wait=15,
        )
    ]


def services(paths: Paths, ports: Ports) -> list[Process]:
    procs: list[Process] = []
    feed = md_feed()
    for svc in discover_services(paths):
        key = svc.replace("-", "_")
        if key not in ports.services:
            continue  # no port in the table: cannot probe it (reported by `mesh status`)
        port = ports.services[key]
        probe: Probe = GrpcHealthProbe(LOCALHOST, port)
        svc_ports: tuple[int, ...] = (port,)
        endpoints = [Endpoint(svc, f"{LOCALHOST}:{port}")]
        if key == "authn" and "authn_jwks" in ports.aux:
            jwks = ports.aux["authn_jwks"]
            probe = AllOf((probe, HttpProbe(f"http://{LOCALHOST}:{jwks}/.well-known/jwks.json")))
            svc_ports += (jwks,)
            endpoints.append(Endpoint("authn jwks", f"http://{LOCALHOST}:{jwks}/.well-known/jwks.json"))
        env = {"TRADE_ENV": "local", "PYTHONUNBUFFERED": "1"}
        if key == "prism" and feed != "prism":
            env["TRADE_FEED_ENABLED"] = "0"  # still the simulated venue for orders; another venue feeds prices
        procs.append(
            Process(
                name=svc,
                argv=(str(paths.python), "-m", f"services.{svc}"),
                tier=Tier.SERVICES,
                env=env,
                probe=probe,
                ports=svc_ports,
                endpoints=tuple(endpoints),
                ready_timeout=JOURNAL_REPLAY_READY_S if svc in JOURNAL_REPLAYERS else 90,
                stop_wait=SNAPSHOT_ON_STOP_WAIT_S if svc in SNAPSHOT_ON_STOP else 15,
            )
        )
    return procs


# These serve only once they replayed ORDERS from its start, which takes longer as history grows (378k events: the
# OMS 41 s, risk 22 s while the whole mesh started); they log their progress meanwhile.
JOURNAL_REPLAYERS = frozenset({"oms", "risk"})
JOURNAL_REPLAY_READY_S = 600.0
# These write a snapshot of their memory as they stop (the OMS's 131k orders: 6 s, after up to 10 s of grace for
# open streams); stopped before it finished, the next start replays more of the streams.
SNAPSHOT_ON_STOP = frozenset({"oms", "risk"})
SNAPSHOT_ON_STOP_WAIT_S = 60


def stop_order(programs: Iterable[Process]) -> list[list[str]]:
    """The reverse of the start order: the edge first, then the services, policy, and infrastructure last (a
    service still stopping keeps its NATS, e.g. the OMS writing its snapshot)."""
    return [[p.name for p in programs if p.tier == tier] for tier in sorted(Tier, reverse=True)]


def envoy(paths: Paths, ports: Ports, tools: Tools) -> Process | None:
    """The edge, once the lead's config generator (mesh/edge) exists."""
    if not (paths.root / "mesh" / "edge" / "__main__.py").is_file():
        return None
    e = ports.edge
    return Process(
        name="envoy",
        # Envoy logs to stderr, which supervisord writes to var/log/envoy.log (one writer, rotated).
        argv=(_required(tools.envoy, "envoy"), "-c", str(paths.run_dir / "envoy.yaml"), "--concurrency", "2"),
        tier=Tier.EDGE,
        probe=HttpProbe(f"http://{LOCALHOST}:{e.envoy_admin}/ready", body_contains="LIVE"),
        ports=(e.envoy, e.envoy_admin),
        endpoints=(
            Endpoint("edge (gRPC, gRPC-web)", f"{LOCALHOST}:{e.envoy}"),
            Endpoint("envoy admin", f"http://{LOCALHOST}:{e.envoy_admin}"),
        ),
        ready_timeout=60,
        prepare=lambda: configs.envoy_config(paths),
    )


def build(paths: Paths, ports: Ports, tools: Tools) -> list[Process]:
    """All programs, in start order."""
    procs = [
        *infra(paths, ports, tools),
        opa(paths, ports, tools),
        *services(paths, ports),
        *feed_handlers(paths, ports),
    ]
    edge = envoy(paths, ports, tools)
    if edge is not None:
        procs.append(edge)
    return sorted(procs, key=lambda p: p.tier)


def hooks(paths: Paths) -> list[Hook]:
    """Post-start hooks, run once every tier is ready."""
    found: list[Hook] = []
    authn = paths.services_dir / "authn"
    if (authn / "seed.py").is_file() or (authn / "seed" / "__main__.py").is_file():
        found.append(Hook("seed demo users", (str(paths.python), "-m", "services.authn.seed"), {"TRADE_ENV": "local"}))
    return found


def unported_services(paths: Paths, ports: Ports) -> list[str]:
    """Service packages that have no entry in ports.toml [services] (so they are not run)."""
    return [s for s in discover_services(paths) if s.replace("-", "_") not in ports.services]
