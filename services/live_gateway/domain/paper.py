"""Paper trading: orders fill against the live mid price, with slippage and fees; nothing leaves the gateway.

Rules:
- A market order fills completely on arrival at the mid moved against the order by ``slippage_bps`` (buy above,
  sell below), as taker. Without a quote for the symbol it is rejected (NO_LIQUIDITY).
- A limit order is marketable when the mid has crossed it (buy: mid <= limit, sell: mid >= limit). Marketable on
  arrival (or after an amend) it fills as taker at the slipped mid, capped at its limit. Otherwise it rests (IOC and
  FOK expire instead) until a later mid crosses it, then fills as maker at its limit price.
- Fees: ``price * quantity * fee_bps / 10_000`` in the symbol's quote asset, rounded up to ``fee_places``.
- Fills are complete (no partial fills); STOP and STOP_LIMIT are not supported.

State lives in memory only: a restart forgets resting paper orders.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from services.live_gateway.domain.model import (
    AmendOrder,
    CancelOrder,
    ExecType,
    Liquidity,
    OrderSpec,
    OrderStatus,
    OrderType,
    PlaceOrder,
    PlaceResult,
    Side,
    TimeInForce,
    Venue,
    VenueExecution,
    VenueRejected,
)

BPS = Decimal(10_000)
QUOTE_ASSETS = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USD", "EUR", "TRY", "BTC", "ETH", "BNB")


def quote_asset(symbol: str) -> str:
    """The quote asset of a canonical symbol (BTCUSDT -> USDT); USDT when the suffix is unknown."""
    for asset in QUOTE_ASSETS:
        if symbol.endswith(asset) and len(symbol) > len(asset):
            return asset
    return "USDT"


@dataclass(frozen=True)
class PaperConfig:
    slippage_bps: Decimal = Decimal(1)
    maker_fee_bps: Decimal = Decimal(1)
    taker_fee_bps: Decimal = Decimal(5)
    price_places: int = 8
    fee_places: int = 8


def slipped_price(mid: Decimal, side: Side, slippage_bps: Decimal, places: int) -> Decimal:
    """The mid moved against the order: a buy pays more (rounded up), a sell gets less (rounded down)."""
    step = Decimal(1).scaleb(-places)
    if side == Side.BUY:
        return (mid * (BPS + slippage_bps) / BPS).quantize(step, rounding=ROUND_CEILING)
    return (mid * (BPS - slippage_bps) / BPS).quantize(step, rounding=ROUND_FLOOR)


def fee_for(price: Decimal, quantity: Decimal, fee_bps: Decimal, places: int) -> Decimal:
    """Rounded towards +infinity: a charge is rounded up, a rebate (negative rate) towards zero."""
    return (price * quantity * fee_bps / BPS).quantize(Decimal(1).scaleb(-places), rounding=ROUND_CEILING)


def paper_order_id(account_id: str, order_id: str) -> str:
    """The paper venue's order id: account-scoped, so fill ids stay unique even if an OMS order id repeats."""
    return f"paper-{account_id}-{order_id}"


def crosses(spec: OrderSpec, mid: Decimal) -> bool:
    if spec.order_type == OrderType.MARKET:
        return True
    assert spec.limit_price is not None
    return mid <= spec.limit_price if spec.side == Side.BUY else mid >= spec.limit_price


@dataclass
class PaperOrder:
    order: PlaceOrder
    spec: OrderSpec
    status: OrderStatus = OrderStatus.NEW
    events: int = 0

    @property
    def venue_order_id(self) -> str:
        return paper_order_id(self.order.account_id, self.order.order_id)


class PaperEngine:
    """The paper venue's order book per account; every method returns the executions it produced, in order."""

    def __init__(self, config: PaperConfig) -> None:
        self.config = config
        self._mids: dict[str, Decimal] = {}
        self._orders: dict[tuple[str, str], PaperOrder] = {}

    def mid(self, symbol: str) -> Decimal | None:
        return self._mids.get(symbol)

    def resting(self, symbol: str) -> list[PaperOrder]:
        return [o for o in self._orders.values() if o.order.symbol == symbol and not o.status.done]

    def _event(
        self, po: PaperOrder, exec_type: ExecType, status: OrderStatus, now_ns: int, **fields: object
    ) -> VenueExecution:
        po.events += 1
        po.status = status
        filled = po.spec.quantity if status == OrderStatus.FILLED else Decimal(0)
        ex = VenueExecution(
            venue=Venue.PAPER,
            account_id=po.order.account_id,
            symbol=po.order.symbol,
            order_id=po.order.order_id,
            venue_order_id=po.venue_order_id,
            exec_id=f"{po.order.order_id}:{po.events}",
            exec_type=exec_type,
            order_status=status,
            side=po.spec.side,
            quantity=po.spec.quantity,
            limit_price=po.spec.limit_price,
            cum_qty=filled,
            leaves_qty=Decimal(0) if status.done else po.spec.quantity - filled,
            event_time_ns=now_ns,
            receive_time_ns=now_ns,
        )
        return replace(ex, **fields)  # type: ignore[arg-type]

    def _fill(self, po: PaperOrder, price: Decimal, liquidity: Liquidity, now_ns: int) -> VenueExecution:
        rate = self.config.maker_fee_bps if liquidity == Liquidity.MAKER else self.config.taker_fee_bps
        qty = po.spec.quantity
        return self._event(
            po,
            ExecType.TRADE,
            OrderStatus.FILLED,
            now_ns,
            last_price=price,
            last_quantity=qty,
            avg_price=price,
            fee=fee_for(price, qty, rate, self.config.fee_places),
            fee_currency=quote_asset(po.order.symbol),
            liquidity=liquidity,
            trade_id=f"{po.order.order_id}-{po.events + 1}",
        )

    def _taker_price(self, spec: OrderSpec, mid: Decimal) -> Decimal:
        price = slipped_price(mid, spec.side, self.config.slippage_bps, self.config.price_places)
        if spec.limit_price is None:
            return price
        return min(price, spec.limit_price) if spec.side == Side.BUY else max(price, spec.limit_price)

    def _on_entry(self, po: PaperOrder, now_ns: int) -> list[VenueExecution]:
        """An order just entered or replaced: take liquidity if the mid crosses it, else rest or expire."""
        mid = self._mids.get(po.order.symbol)
        if mid is not None and crosses(po.spec, mid):
            return [self._fill(po, self._taker_price(po.spec, mid), Liquidity.TAKER, now_ns)]
        if po.spec.time_in_force in (TimeInForce.IOC, TimeInForce.FOK):
            return [self._event(po, ExecType.EXPIRED, OrderStatus.EXPIRED, now_ns)]
        return []

    def place(self, order: PlaceOrder, now_ns: int) -> tuple[PlaceResult, list[VenueExecution]]:
        key = (order.account_id, order.order_id)
        existing = self._orders.get(key)
        if existing is not None:
            return PlaceResult(existing.venue_order_id, existing.status, (), replayed=True), []
        spec = order.spec
        if spec.order_type not in (OrderType.MARKET, OrderType.LIMIT):
            raise VenueRejected("NOT_SUPPORTED", "the paper venue takes MARKET and LIMIT orders only")
        mid = self._mids.get(order.symbol)
        if spec.order_type == OrderType.MARKET and mid is None:
            raise VenueRejected("NO_LIQUIDITY", f"no quote for {order.symbol} yet")
        if spec.post_only and mid is not None and crosses(spec, mid):
            raise VenueRejected("POST_ONLY_WOULD_TAKE", f"limit {spec.limit_price} crosses the mid {mid}")
        po = PaperOrder(order, spec)
        self._orders[key] = po
        events = [self._event(po, ExecType.NEW, OrderStatus.NEW, now_ns)]
        events += self._on_entry(po, now_ns)
        return PlaceResult(po.venue_order_id, po.status), events

    def _working(self, account_id: str, order_id: str, too_late: str) -> PaperOrder:
        po = self._orders.get((account_id, order_id))
        if po is None:
            raise VenueRejected("ORDER_NOT_FOUND", f"no paper order {order_id} in account {account_id}")
        if po.status.done:
            raise VenueRejected(too_late, f"order {order_id} is already {po.status.value}")
        return po

    def cancel(self, cancel: CancelOrder, now_ns: int) -> list[VenueExecution]:
        po = self._working(cancel.account_id, cancel.order_id, "TOO_LATE_TO_CANCEL")
        return [self._event(po, ExecType.CANCELED, OrderStatus.CANCELED, now_ns)]

    def amend(self, amend: AmendOrder, now_ns: int) -> list[VenueExecution]:
        po = self._working(amend.account_id, amend.order_id, "TOO_LATE_TO_AMEND")
        new = amend.new_spec
        if new.side != po.spec.side or new.order_type != po.spec.order_type:
            raise VenueRejected("VALIDATION_FAILED", "an amend keeps the order's side and type")
        po.spec = replace(po.spec, quantity=new.quantity, limit_price=new.limit_price)
        return [self._event(po, ExecType.REPLACED, OrderStatus.NEW, now_ns), *self._on_entry(po, now_ns)]

    def on_quote(self, symbol: str, bid: Decimal | None, ask: Decimal | None, now_ns: int) -> list[VenueExecution]:
        """A new top of book: fill resting orders the mid crossed (as maker, at their limit), expire GTD orders."""
        if bid is None or ask is None:
            return []
        mid = (bid + ask) / 2
        self._mids[symbol] = mid
        events: list[VenueExecution] = []
        for po in self.resting(symbol):
            if po.spec.time_in_force == TimeInForce.GTD and po.spec.expire_time_ns <= now_ns:
                events.append(self._event(po, ExecType.EXPIRED, OrderStatus.EXPIRED, now_ns))
            elif crosses(po.spec, mid):
                assert po.spec.limit_price is not None
                events.append(self._fill(po, po.spec.limit_price, Liquidity.MAKER, now_ns))
        return events
