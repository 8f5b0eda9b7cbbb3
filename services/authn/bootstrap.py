"""Composition root of authn: wires the domain to SQLite, argon2, OPA and the JWKS HTTP endpoint."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from trade.authn.v1 import authn_pb2, authn_pb2_grpc

from services.authn.adapters.hashing import Argon2Hasher
from services.authn.adapters.jwks_http import JwksHttpServer
from services.authn.adapters.opa_revocations import OpaRevocationSink
from services.authn.adapters.sqlite_store import SqliteUserStore
from services.authn.domain.ports import Clock, PasswordHasher, RevocationSink, UserStore
from services.authn.domain.service import Authn
from services.authn.domain.tokens import TokenPolicy
from services.authn.servicer import AuthnServicer
from services.authn.settings import AuthnSettings
from services.runtime.server import Registration

SERVICE_NAME = authn_pb2.DESCRIPTOR.services_by_name["AuthnService"].full_name


class SystemClock:
    def now(self) -> float:
        return time.time()


@dataclass
class AuthnAdapters:
    store: UserStore
    hasher: PasswordHasher
    revocations: RevocationSink
    clock: Clock


def token_policy(settings: AuthnSettings) -> TokenPolicy:
    return TokenPolicy(
        issuer=settings.issuer,
        audience=settings.audience,
        access_ttl_s=settings.access_ttl_s,
        refresh_ttl_s=settings.refresh_ttl_s,
        retired_key_keep_s=settings.access_ttl_s + 60,
        key_propagation_s=settings.key_propagation_s,
    )


def build_domain(settings: AuthnSettings, adapters: AuthnAdapters | None = None) -> Authn:
    if adapters is None:
        adapters = AuthnAdapters(
            SqliteUserStore(settings.db_path),
            Argon2Hasher(),
            OpaRevocationSink(settings.opa_url),
            SystemClock(),
        )
    return Authn(adapters.store, adapters.hasher, adapters.revocations, adapters.clock, token_policy(settings))


async def build(settings: AuthnSettings) -> Registration:
    sink = OpaRevocationSink(settings.opa_url)
    store = SqliteUserStore(settings.db_path)
    authn = build_domain(settings, AuthnAdapters(store, Argon2Hasher(), sink, SystemClock()))
    jwks = JwksHttpServer(authn.jwks, settings.host, settings.jwks_port)
    tasks: list[asyncio.Task[None]] = []

    async def start() -> None:
        await jwks.start()
        tasks.append(asyncio.create_task(sink.keep_synced(authn.revocations, settings.revocation_sync_interval_s)))

    async def stop() -> None:
        for task in tasks:
            task.cancel()
        await jwks.stop()
        await sink.close()

    return Registration(
        add_to_server=lambda server: authn_pb2_grpc.add_AuthnServiceServicer_to_server(AuthnServicer(authn), server),
        service_names=[SERVICE_NAME],
        on_start=[start],
        on_stop=[stop],
    )
