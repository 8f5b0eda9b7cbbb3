"""Typed loader for ``mesh/ports.toml``, the single table of default ports.

Usage::

    from mesh.ports import load_ports
    ports = load_ports()
    ports.service("oms")        # 8099 ("sink-ticks" and "sink_ticks" both work)
    ports.infra.nats            # 4222
    ports.edge.envoy            # 8080
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

PORTS_FILE = Path(__file__).resolve().with_name("ports.toml")


class _Section:
    """Attribute access (``infra.nats``) plus subscript access (``infra["nats"]``)."""

    __slots__ = ()

    def __getitem__(self, name: str) -> int:
        if name not in {f.name for f in fields(self)}:  # type: ignore[arg-type]
            raise KeyError(name)
        value: int = getattr(self, name)
        return value


@dataclass(frozen=True, slots=True)
class EdgePorts(_Section):
    envoy: int
    envoy_admin: int


@dataclass(frozen=True, slots=True)
class InfraPorts(_Section):
    nats: int
    nats_monitoring: int
    valkey: int
    questdb_http: int
    questdb_ilp: int
    questdb_pg: int
    clickhouse_http: int
    opa_rest: int
    opa_envoy_grpc: int
    supervisor: int


@dataclass(frozen=True, slots=True)
class Ports:
    """The parsed port table. ``services`` and ``aux`` are read-only name -> port maps."""

    services: Mapping[str, int]
    aux: Mapping[str, int]
    edge: EdgePorts
    infra: InfraPorts
    raw: Mapping[str, Mapping[str, int]]

    def service(self, name: str) -> int:
        """Port of a service by its name (hyphens and underscores are equivalent)."""
        key = name.replace("-", "_")
        try:
            return self.services[key]
        except KeyError:
            raise KeyError(f"no port for service {name!r} in {PORTS_FILE.name} [services]") from None

    def all(self) -> dict[str, int]:
        """Every port in the table, keyed ``section.name``."""
        return {f"{section}.{name}": port for section, table in self.raw.items() for name, port in table.items()}


_T = TypeVar("_T", EdgePorts, InfraPorts)


def _section(cls: type[_T], section: str, table: Mapping[str, int]) -> _T:
    names = [f.name for f in fields(cls)]
    missing = [n for n in names if n not in table]
    if missing:
        raise ValueError(f"[{section}] is missing {', '.join(missing)}")
    return cls(**{n: table[n] for n in names})


def parse_ports(data: Mapping[str, Any]) -> Ports:
    """Validate a decoded ports table: integer ports in range, no port used twice."""
    raw: dict[str, Mapping[str, int]] = {}
    seen: dict[int, str] = {}
    for section, table in data.items():
        if not isinstance(table, dict):
            raise ValueError(f"[{section}] must be a table")
        checked: dict[str, int] = {}
        for name, port in table.items():
            if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
                raise ValueError(f"{section}.{name} = {port!r} is not a TCP port")
            where = f"{section}.{name}"
            if port in seen:
                raise ValueError(f"port {port} is used by both {seen[port]} and {where}")
            seen[port] = where
            checked[name] = port
        raw[section] = MappingProxyType(checked)
    for required in ("services", "aux", "edge", "infra"):
        raw.setdefault(required, MappingProxyType({}))
    return Ports(
        services=raw["services"],
        aux=raw["aux"],
        edge=_section(EdgePorts, "edge", raw["edge"]),
        infra=_section(InfraPorts, "infra", raw["infra"]),
        raw=MappingProxyType(raw),
    )


@cache
def load_ports(path: Path = PORTS_FILE) -> Ports:
    """Load (once per path) and validate the port table."""
    with path.open("rb") as fh:
        return parse_ports(tomllib.load(fh))
