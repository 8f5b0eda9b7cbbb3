"""Composition root of catalog: serve gRPC reflection over the API's full descriptor set (buf build output)."""

from __future__ import annotations

from pathlib import Path

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from pydantic import Field

from mesh.ports import load_ports
from services.runtime.server import Registration, run
from services.runtime.settings import REPO_ROOT, ServiceSettings


class CatalogSettings(ServiceSettings):
    service_name: str = "catalog"
    port: int = Field(default_factory=lambda: load_ports().service("catalog"))
    # `buf build proto -o var/run/api.binpb` (done by `make up`); carries json_name, comments-free.
    descriptor_set: Path = REPO_ROOT / "var" / "run" / "api.binpb"


def load_pool(path: Path) -> tuple[descriptor_pool.DescriptorPool, list[str]]:
    """A private pool with every file of the set, and the full names of the trade.* services in it."""
    files = descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    services = [
        f"{file.package}.{svc.name}" for file in files.file if file.package.startswith("trade.") for svc in file.service
    ]
    return pool, sorted(services)


async def build(settings: CatalogSettings) -> Registration:
    pool, names = load_pool(settings.descriptor_set)

    def add(_server: grpc.aio.Server) -> None:
        """Nothing but health and reflection run here."""

    return Registration(add_to_server=add, service_names=(), reflect_also=names, reflection_pool=pool)


if __name__ == "__main__":
    run(CatalogSettings(), build)
