"""Composition root of catalog: load every generated descriptor, expose them through reflection."""

from __future__ import annotations

import grpc
from pydantic import Field

from mesh.edge.api import services
from mesh.ports import load_ports
from services.runtime.server import Registration, run
from services.runtime.settings import ServiceSettings


class CatalogSettings(ServiceSettings):
    service_name: str = "catalog"
    port: int = Field(default_factory=lambda: load_ports().service("catalog"))


async def build(settings: CatalogSettings) -> Registration:
    names = [svc.full_name for svc in services()]

    def add(_server: grpc.aio.Server) -> None:
        """Nothing but health and reflection run here."""

    return Registration(add_to_server=add, service_names=(), reflect_also=names)


if __name__ == "__main__":
    run(CatalogSettings(), build)
