"""The API surface, read from the generated Python descriptors: services, their methods, which stream."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.descriptor import FileDescriptor

GEN_PYTHON = Path(__file__).resolve().parents[2] / "gen" / "python"


@dataclass(frozen=True)
class Method:
    name: str
    server_streaming: bool
    client_streaming: bool


@dataclass(frozen=True)
class Service:
    full_name: str  # trade.oms.v1.OmsService
    package: str  # trade.oms.v1
    backend: str  # oms (the key in ports.toml [services])
    methods: tuple[Method, ...]


def load_api_modules() -> list[FileDescriptor]:
    """Import every generated trade.*.v1 *_pb2 module; returns their file descriptors."""
    files = []
    for path in sorted((GEN_PYTHON / "trade").rglob("*_pb2.py")):
        name = ".".join(path.relative_to(GEN_PYTHON).with_suffix("").parts)
        files.append(importlib.import_module(name).DESCRIPTOR)
    return files


def services() -> list[Service]:
    out = []
    for file in load_api_modules():
        for svc in file.services_by_name.values():
            package = file.package
            backend = package.split(".")[1]
            methods = tuple(Method(m.name, m.server_streaming, m.client_streaming) for m in svc.methods)
            out.append(Service(svc.full_name, package, backend, methods))
    return sorted(out, key=lambda s: s.full_name)
