"""Composition root of the live-gateway: venue adapters -> Gateway -> JetStream EXEC/FILLS, plus the gRPC API."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from trade.live_gateway.v1 import live_gateway_pb2, live_gateway_pb2_grpc

from services.live_gateway.adapters.binance import BinanceSpotAdapter
from services.live_gateway.adapters.jetstream import JetStreamReports
from services.live_gateway.adapters.paper import PaperAdapter
from services.live_gateway.adapters.prism import PrismAdapter
from services.live_gateway.domain.gateway import Gateway
from services.live_gateway.domain.paper import PaperConfig, PaperEngine
from services.live_gateway.domain.ports import VenueAdapter
from services.live_gateway.servicer import LiveGatewayServicer
from services.live_gateway.settings import LiveGatewaySettings
from services.runtime.bus import Bus
from services.runtime.clients import insecure_channel
from services.runtime.server import Registration
from services.runtime.streams import EXEC, FILLS

SERVICE_NAME = live_gateway_pb2.DESCRIPTOR.services_by_name["LiveGatewayService"].full_name


class SystemClock:
    def now_ns(self) -> int:
        return time.time_ns()


@dataclass
class LiveGateway:
    """The running pieces of one gateway (the service, or an in-process gateway in tests)."""

    settings: LiveGatewaySettings
    bus: Bus
    gateway: Gateway
    adapters: Sequence[VenueAdapter]

    async def start(self, *, connect: bool = True) -> None:
        if connect:
            await self.bus.connect()
        await self.bus.ensure_streams([EXEC, FILLS])
        await self.gateway.start()

    async def stop(self) -> None:
        await self.gateway.stop()
        await self.bus.close()

    def servicer(self) -> LiveGatewayServicer:
        return LiveGatewayServicer(self.gateway, self.settings.stream_heartbeat_s)


def venue_adapters(settings: LiveGatewaySettings, bus: Bus, clock: SystemClock) -> list[VenueAdapter]:
    adapters: list[VenueAdapter] = []
    if settings.prism_enabled:
        adapters.append(
            PrismAdapter(
                insecure_channel(settings.prism_target, settings.prism_deadline_s),
                clock,
                deadline_s=settings.prism_deadline_s,
                accounts=settings.prism_accounts,
                probe_interval_s=settings.prism_probe_interval_s,
            )
        )
    if settings.paper_enabled:
        config = PaperConfig(
            slippage_bps=settings.paper_slippage_bps,
            maker_fee_bps=settings.paper_maker_fee_bps,
            taker_fee_bps=settings.paper_taker_fee_bps,
        )
        adapters.append(
            PaperAdapter(PaperEngine(config), bus, clock, settings.md_stream, settings.quote_subject_prefix)
        )
    if settings.binance_enabled:
        adapters.append(
            BinanceSpotAdapter(
                settings.binance_trade_rest_url,
                settings.binance_trade_ws_url,
                settings.binance_api_key,
                settings.binance_api_secret.get_secret_value(),
                settings.binance_account_id,
                clock,
                recv_window_ms=settings.binance_recv_window_ms,
                order_limit_10s=settings.binance_order_limit_10s,
            )
        )
    return adapters


def compose(
    settings: LiveGatewaySettings, bus: Bus | None = None, adapters: Sequence[VenueAdapter] | None = None
) -> LiveGateway:
    clock = SystemClock()
    bus = bus or Bus(settings.nats_url, settings.service_name)
    reports = JetStreamReports(bus, EXEC.name, settings.resume_window_s)
    chosen = list(adapters) if adapters is not None else venue_adapters(settings, bus, clock)
    gateway = Gateway(chosen, reports, reports, clock, settings.stream_queue_size)
    return LiveGateway(settings, bus, gateway, chosen)


async def build(settings: LiveGatewaySettings) -> Registration:
    app = compose(settings)
    return Registration(
        add_to_server=lambda server: live_gateway_pb2_grpc.add_LiveGatewayServiceServicer_to_server(
            app.servicer(), server
        ),
        service_names=[SERVICE_NAME],
        on_start=[app.start],
        on_stop=[app.stop],
    )
