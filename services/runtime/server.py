"""grpc.aio server bootstrap: health, reflection, interceptors, limits, keepalive, graceful shutdown."""

from __future__ import annotations

import asyncio
import gc
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import grpc
import structlog
from google.protobuf import descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.runtime.interceptors import ServerInterceptor
from services.runtime.logging import configure_logging
from services.runtime.settings import ServiceSettings
from services.runtime.telemetry import configure_tracing

log = structlog.get_logger("server")

Hook = Callable[[], Awaitable[None]]


@dataclass
class Registration:
    """What a composition root gives the bootstrap: services to add and lifecycle hooks."""

    add_to_server: Callable[[grpc.aio.Server], None]
    service_names: Sequence[str]
    on_start: Sequence[Hook] = field(default_factory=tuple)
    on_stop: Sequence[Hook] = field(default_factory=tuple)
    # Services described by reflection without being served here (the catalog describes the whole API).
    reflect_also: Sequence[str] = field(default_factory=tuple)
    # Descriptor pool reflection reads from (default: the process's generated modules).
    reflection_pool: descriptor_pool.DescriptorPool | None = None


def server_options(settings: ServiceSettings) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", settings.max_receive_message_bytes),
        ("grpc.max_send_message_length", settings.max_send_message_bytes),
        ("grpc.keepalive_time_ms", settings.keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", settings.keepalive_timeout_ms),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
        ("grpc.so_reuseport", 0),
    ]


class RunningServer:
    """A started server; `stop()` drains in-flight calls within the grace period."""

    def __init__(
        self,
        server: grpc.aio.Server,
        health_servicer: health.aio.HealthServicer,
        registration: Registration,
        settings: ServiceSettings,
        port: int,
    ) -> None:
        self.server = server
        self.health = health_servicer
        self.registration = registration
        self.settings = settings
        self.port = port
        self._stopped = asyncio.Event()

    async def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        log.info("server.stopping", grace_s=self.settings.shutdown_grace_s)
        await self.health.enter_graceful_shutdown()
        await self.server.stop(self.settings.shutdown_grace_s)
        for hook in self.registration.on_stop:
            await hook()
        log.info("server.stopped")

    async def wait(self) -> None:
        await self.server.wait_for_termination()


async def start_server(
    settings: ServiceSettings, registration: Registration, *, freeze_heap: bool = False
) -> RunningServer:
    """Build and start the server; port 0 in settings picks a free port (tests). `freeze_heap` (a service process,
    never a test's): once the start hooks loaded the state, and before the server takes calls."""
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    configure_tracing(settings.service_name)
    server = grpc.aio.server(interceptors=[ServerInterceptor()], options=server_options(settings))
    registration.add_to_server(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [
        *registration.service_names,
        *registration.reflect_also,
        health.SERVICE_NAME,
        reflection.SERVICE_NAME,
    ]
    reflection.enable_server_reflection(names, server, pool=registration.reflection_pool)
    port = server.add_insecure_port(f"{settings.host}:{settings.port}")
    for hook in registration.on_start:
        await hook()
    if freeze_heap:
        freeze_startup_heap()
    await server.start()
    for name in ("", *registration.service_names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("server.started", host=settings.host, port=port, services=list(registration.service_names))
    return RunningServer(server, health_servicer, registration, settings, port)


def freeze_startup_heap() -> None:
    """Collect what start-up left behind, then exempt the survivors (replayed state, modules) from every later
    collection. Cyclic garbage among them is never freed; reference-counted objects still are."""
    gc.collect()
    gc.freeze()
    log.info("server.gc_frozen", objects=gc.get_freeze_count())


async def serve(settings: ServiceSettings, registration: Registration) -> None:
    """Run until SIGTERM/SIGINT, then shut down gracefully."""
    running = await start_server(settings, registration, freeze_heap=settings.gc_freeze_after_start)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    waiter = asyncio.ensure_future(running.wait())
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    await running.stop()
    for task in (waiter, stopper):
        task.cancel()


S = TypeVar("S", bound=ServiceSettings)


def run(settings: S, build: Callable[[S], Awaitable[Registration]]) -> None:
    """Entry point for `python -m services.<svc>`: compose the service, then serve it."""

    async def main() -> None:
        registration = await build(settings)
        await serve(settings, registration)

    asyncio.run(main())
