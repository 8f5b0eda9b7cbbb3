"""Readiness probes: one small frozen object per kind of check, each with ``check() -> ProbeResult``."""

from __future__ import annotations

import importlib
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

LOCALHOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    detail: str

    def __bool__(self) -> bool:
        return self.ok


class Probe(Protocol):
    """Anything that can tell whether a process is ready to serve."""

    def check(self) -> ProbeResult: ...

    def describe(self) -> str: ...


@dataclass(frozen=True, slots=True)
class HttpProbe:
    """GET ``url``; ready when the status matches and the body contains ``body_contains`` (if set)."""

    url: str
    status: int = 200
    body_contains: str | None = None
    timeout: float = 2.0

    def check(self) -> ProbeResult:
        try:
            with urllib.request.urlopen(self.url, timeout=self.timeout) as resp:
                code = int(resp.status)
                body = resp.read(65536).decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            code, body = exc.code, exc.read(4096).decode("utf-8", "replace")
        except (OSError, ValueError) as exc:
            return ProbeResult(False, f"GET {self.url}: {_reason(exc)}")
        if code != self.status:
            return ProbeResult(False, f"GET {self.url} -> {code} {body[:200].strip()}")
        if self.body_contains is not None and self.body_contains not in body:
            return ProbeResult(False, f"GET {self.url} -> {code}, body lacks {self.body_contains!r}")
        return ProbeResult(True, f"GET {self.url} -> {code}")

    def describe(self) -> str:
        return f"GET {self.url}"


@dataclass(frozen=True, slots=True)
class TcpProbe:
    """Ready when a TCP connection is accepted."""

    host: str
    port: int
    timeout: float = 1.0

    def check(self) -> ProbeResult:
        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout):
                return ProbeResult(True, f"tcp {self.host}:{self.port} open")
        except OSError as exc:
            return ProbeResult(False, f"tcp {self.host}:{self.port}: {_reason(exc)}")

    def describe(self) -> str:
        return f"tcp {self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class RedisPingProbe:
    """Valkey/Redis ``PING`` -> ``+PONG`` over raw RESP (no client library needed)."""

    host: str
    port: int
    timeout: float = 1.0

    def check(self) -> ProbeResult:
        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout) as sock:
                sock.sendall(b"*1\r\n$4\r\nPING\r\n")
                reply = sock.recv(64)
        except OSError as exc:
            return ProbeResult(False, f"PING {self.host}:{self.port}: {_reason(exc)}")
        if reply.startswith(b"+PONG"):
            return ProbeResult(True, "PONG")
        return ProbeResult(False, f"PING -> {reply[:60]!r}")

    def describe(self) -> str:
        return f"PING {self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class QuestDbSqlProbe:
    """Runs ``SELECT 1`` through QuestDB's REST ``/exec`` endpoint."""

    host: str
    port: int
    timeout: float = 2.0

    def check(self) -> ProbeResult:
        url = f"http://{self.host}:{self.port}/exec?query=SELECT%201"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as resp:
                doc = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return ProbeResult(False, f"SELECT 1 -> HTTP {exc.code}")
        except (OSError, ValueError) as exc:
            return ProbeResult(False, f"SELECT 1: {_reason(exc)}")
        if isinstance(doc, dict) and doc.get("dataset") == [[1]]:
            return ProbeResult(True, "SELECT 1 -> 1")
        return ProbeResult(False, f"SELECT 1 -> {str(doc)[:200]}")

    def describe(self) -> str:
        return f"SQL SELECT 1 @ {self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class GrpcHealthProbe:
    """``grpc.health.v1.Health/Check`` must answer SERVING for ``service`` ("" = the whole server)."""

    host: str
    port: int
    service: str = ""
    timeout: float = 2.0

    def check(self) -> ProbeResult:
        # Imported lazily (keeps the CLI light) and untyped (grpc ships no stubs).
        grpc: Any = importlib.import_module("grpc")
        health_pb2: Any = importlib.import_module("grpc_health.v1.health_pb2")
        health_pb2_grpc: Any = importlib.import_module("grpc_health.v1.health_pb2_grpc")

        target = f"{self.host}:{self.port}"
        try:
            with grpc.insecure_channel(target) as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                resp = stub.Check(health_pb2.HealthCheckRequest(service=self.service), timeout=self.timeout)
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else None
            return ProbeResult(False, f"health {target}: {code}")
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
        return ProbeResult(resp.status == health_pb2.HealthCheckResponse.SERVING, f"health {target}: {status}")

    def describe(self) -> str:
        return f"grpc.health {self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class NatsClientProbe:
    """Ready when a client connection with this name is open at the NATS server (its monitoring ``/connz``):
    for programs that serve no port of their own, such as feed handlers."""

    host: str
    port: int
    client_name: str
    timeout: float = 2.0

    def check(self) -> ProbeResult:
        url = f"http://{self.host}:{self.port}/connz?limit=1024"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as resp:
                doc = json.loads(resp.read())
        except (OSError, ValueError) as exc:
            return ProbeResult(False, f"connz: {_reason(exc)}")
        names = {c.get("name") for c in doc.get("connections", [])}
        if self.client_name in names:
            return ProbeResult(True, f"{self.client_name} connected to NATS")
        return ProbeResult(False, f"no NATS connection named {self.client_name!r}")

    def describe(self) -> str:
        return f"NATS client {self.client_name!r} @ {self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class AllOf:
    """Ready when every inner probe is ready (checked in order, stops at the first failure)."""

    probes: tuple[Probe, ...]

    def check(self) -> ProbeResult:
        details = []
        for probe in self.probes:
            result = probe.check()
            if not result.ok:
                return result
            details.append(result.detail)
        return ProbeResult(True, "; ".join(details))

    def describe(self) -> str:
        return " + ".join(p.describe() for p in self.probes)


def check_many(probes: Sequence[Probe]) -> list[ProbeResult]:
    """Run probes concurrently (they are I/O bound) and return results in order."""
    if not probes:
        return []
    with ThreadPoolExecutor(max_workers=min(16, len(probes))) as pool:
        return list(pool.map(lambda p: p.check(), probes))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and exc.reason is not None:
        return str(exc.reason)
    return str(exc) or type(exc).__name__
