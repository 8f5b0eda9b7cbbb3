"""The paper venue on the real NATS: it fills at the mid of the quotes on md.quote.<symbol> (slippage and fees),
a resting limit fills when a later quote crosses it (any quote of a multi-quote message), and the fills land in
FILLS."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from trade.live_gateway.v1 import live_gateway_pb2
from trade.normalizer.v1 import events_pb2
from trade.type.v1 import decimal_pb2, fill_pb2, market_data_pb2, order_pb2, venue_pb2

from services.live_gateway.settings import LiveGatewaySettings
from services.runtime.bus import Bus
from tests.support.live_gateway import read_all, running_gateway, wait_count
from tests.support.marketdata import md_message

pytestmark = pytest.mark.usefixtures("mesh")


def dec(value: str) -> decimal_pb2.Decimal:
    return decimal_pb2.Decimal(value=value)


@pytest.fixture
async def bus() -> AsyncIterator[Bus]:
    b = Bus(LiveGatewaySettings().nats_url, "test-live-gateway-paper")
    await b.connect()
    yield b
    await b.close()


def quote_event(symbol: str, seq: int, bid: str, ask: str) -> events_pb2.MarketDataEvent:
    return events_pb2.MarketDataEvent(
        event_id=f"quote:{symbol}:{seq}",
        publish_time_ns=time.time_ns(),
        quote=market_data_pb2.Quote(
            symbol=symbol,
            venue=venue_pb2.VENUE_PRISM,
            bid_price=dec(bid),
            bid_size=dec("1"),
            ask_price=dec(ask),
            ask_size=dec("1"),
            sequence=seq,
            event_time_ns=time.time_ns(),
        ),
    )


async def publish_quotes(bus: Bus, symbol: str, first_seq: int, *bid_asks: tuple[str, str]) -> None:
    """One MD message carrying a quote per (bid, ask), sequences from first_seq."""
    events = [quote_event(symbol, first_seq + i, bid, ask) for i, (bid, ask) in enumerate(bid_asks)]
    await bus.publish(f"md.quote.{symbol}", md_message(*events), msg_id=f"{events[0].event_id}+{len(events)}")


def paper_order(acct: str, symbol: str, order_id: str, spec: order_pb2.OrderSpec) -> live_gateway_pb2.PlaceOrderRequest:
    return live_gateway_pb2.PlaceOrderRequest(
        account_id=acct, symbol=symbol, venue=venue_pb2.VENUE_PAPER, order_id=order_id, spec=spec
    )


async def test_paper_fills_at_the_live_mid_with_slippage_and_fees(bus: Bus) -> None:
    acct = f"lgw-paper-{uuid.uuid4().hex[:10]}"
    symbol = f"LGW{uuid.uuid4().hex[:8].upper()}USDT"
    settings = LiveGatewaySettings(
        port=0,
        prism_enabled=False,
        paper_slippage_bps=Decimal(10),
        paper_maker_fee_bps=Decimal(2),
        paper_taker_fee_bps=Decimal(5),
        shutdown_grace_s=0.5,
        log_json=False,
    )
    # Stored in MD: the last quote of the message (mid 100) seeds the mid of the first order.
    await publish_quotes(bus, symbol, 1, ("49", "51"), ("99", "101"))
    async with running_gateway(settings) as (_, stub):
        market = order_pb2.OrderSpec(
            side=order_pb2.SIDE_BUY,
            order_type=order_pb2.ORDER_TYPE_MARKET,
            quantity=dec("2"),
            time_in_force=order_pb2.TIME_IN_FORCE_IOC,
        )
        filled = await stub.PlaceOrder(paper_order(acct, symbol, "pm-1", market), timeout=5)
        assert filled.status == order_pb2.ORDER_STATUS_FILLED

        limit = order_pb2.OrderSpec(
            side=order_pb2.SIDE_SELL,
            order_type=order_pb2.ORDER_TYPE_LIMIT,
            quantity=dec("1"),
            limit_price=dec("105"),
        )
        resting = await stub.PlaceOrder(paper_order(acct, symbol, "pl-1", limit), timeout=5)
        assert resting.status == order_pb2.ORDER_STATUS_NEW
        await publish_quotes(bus, symbol, 3, ("104", "105.5"))  # mid 104.75: not yet
        # Every quote of a message counts: the middle one (mid 105.5 >= 105) fills though the last does not cross.
        await publish_quotes(bus, symbol, 4, ("104", "105"), ("105", "106"), ("103", "104"))
        assert await wait_count(bus, "FILLS", f"fills.{acct}.{symbol}", 2) == 2

    fills = [fill_pb2.Fill.FromString(m.data) for m in await read_all(bus, "FILLS", f"fills.{acct}.{symbol}")]
    taker, maker = fills
    assert (taker.price.value, taker.quantity.value, taker.fee.value) == ("100.1", "2", "0.1001")
    assert taker.liquidity == fill_pb2.LIQUIDITY_TAKER and taker.fee_currency == "USDT"
    assert (maker.price.value, maker.quantity.value, maker.fee.value) == ("105", "1", "0.021")
    assert maker.liquidity == fill_pb2.LIQUIDITY_MAKER and maker.side == order_pb2.SIDE_SELL
    assert maker.fill_id == f"paper:{maker.venue_trade_id}:paper-{acct}-pl-1"
