"""The pre-trade checks as one pure function of an order and a snapshot of the state they read.

Reference price: the last mid. A check that needs it and has none (no quote yet, or stale) fails with
RISK_NO_REFERENCE_PRICE instead of passing blind: a market order needs it whenever a notional cap applies
(instrument or account), a limit/stop order only when its instrument has a price band. A limit order's notional
uses its limit price, a stop order's its stop price.

Position: the worst case of (position + open buys + this order if a buy) and (position - open sells - this order
if a sell) must stay within the maximum; for an amend the amended order's open quantity is replaced by the new
quantity less what it already filled. An order that does not increase that worst case is never refused for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from services.risk.domain.model import (
    AccountLimits,
    InstrumentLimits,
    KillSwitch,
    OpenExposure,
    OrderCheck,
    OrderType,
    Reason,
    Side,
    Violation,
)

UNKNOWN_SYMBOL = "UNKNOWN_SYMBOL"
_BPS = Decimal(10_000)
_CENT = Decimal("0.01")


@dataclass(frozen=True)
class CheckInputs:
    """Everything the checks read, captured at one instant."""

    instrument: InstrumentLimits | None
    account: AccountLimits
    mid: Decimal | None
    position: Decimal
    open: OpenExposure
    day_net_pnl: Decimal | None
    recent_orders: int
    kill_switch: KillSwitch | None


def notional_price(order: OrderCheck, mid: Decimal | None) -> Decimal | None:
    """The price the notional is computed at: the limit price, else the stop price, else (market) the mid."""
    if order.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT) and order.limit_price is not None:
        return order.limit_price
    if order.order_type is OrderType.STOP and order.stop_price is not None:
        return order.stop_price
    return mid


def evaluate(order: OrderCheck, inputs: CheckInputs) -> list[Violation]:
    """Every failed check, in a stable order (empty = approved)."""
    out: list[Violation] = []
    _kill_switch(inputs, out)
    _instrument(order, inputs, out)
    _price(order, inputs, out)
    _position(order, inputs, out)
    _open_orders(order, inputs, out)
    _rate(inputs, out)
    _daily_loss(order, inputs, out)
    return out


def _kill_switch(inputs: CheckInputs, out: list[Violation]) -> None:
    ks = inputs.kill_switch
    if ks is not None:
        scope = "global" if not ks.account_id else f"account {ks.account_id}"
        out.append(Violation(Reason.KILL_SWITCH, f"trading halted by the {scope} kill switch: {ks.reason}"))


def _instrument(order: OrderCheck, inputs: CheckInputs, out: list[Violation]) -> None:
    if inputs.instrument is None:
        out.append(Violation(UNKNOWN_SYMBOL, f"{order.symbol} is not a known instrument"))
    elif not inputs.instrument.trading_enabled:
        out.append(Violation(Reason.INSTRUMENT_DISABLED, f"trading in {order.symbol} is disabled"))


def _price(order: OrderCheck, inputs: CheckInputs, out: list[Violation]) -> None:
    inst, mid = inputs.instrument, inputs.mid
    band = inst.price_band_bps if inst is not None else 0
    banded = [p for p in (order.limit_price, order.stop_price) if p is not None]
    missing_mid = False
    if band and banded and order.order_type is not OrderType.MARKET:
        if mid is None:
            missing_mid = True
        else:
            for price in banded:
                deviation = (abs(price - mid) / mid * _BPS).quantize(_CENT)
                if deviation > band:
                    out.append(
                        Violation(
                            Reason.PRICE_BAND,
                            f"price {price} is {deviation} bps from the mid {mid}; the band is {band} bps",
                            Decimal(band),
                            deviation,
                        )
                    )
    if inst is not None and inst.max_order_quantity is not None and order.quantity > inst.max_order_quantity:
        out.append(
            Violation(
                Reason.MAX_ORDER_QTY,
                f"quantity {order.quantity} exceeds the maximum order quantity {inst.max_order_quantity}",
                inst.max_order_quantity,
                order.quantity,
            )
        )
    caps = [c for c in (inst.max_order_notional if inst else None, inputs.account.max_order_notional) if c is not None]
    if caps:
        cap = min(caps)
        at_price = notional_price(order, mid)
        if at_price is None:
            missing_mid = True
        else:
            notional = order.quantity * at_price
            if notional > cap:
                out.append(
                    Violation(
                        Reason.MAX_NOTIONAL,
                        f"notional {notional} exceeds the maximum order notional {cap}",
                        cap,
                        notional,
                    )
                )
    if missing_mid:
        out.append(
            Violation(
                Reason.NO_REFERENCE_PRICE,
                f"no mid price is known for {order.symbol}: the price band / notional cannot be checked",
            )
        )


def _position(order: OrderCheck, inputs: CheckInputs, out: list[Violation]) -> None:
    limit = inputs.account.position_limit(order.symbol)
    if limit is None and inputs.instrument is not None:
        limit = inputs.instrument.max_position_quantity
    if limit is None:
        return
    buys, sells, replaced = inputs.open.buy_leaves, inputs.open.sell_leaves, inputs.open.replaced
    if replaced is not None and replaced.symbol == order.symbol:
        # The amended order counts as its new version below, not twice.
        if replaced.side is Side.BUY:
            buys -= replaced.leaves_qty
        else:
            sells -= replaced.leaves_qty
    else:
        replaced = None

    def worst(extra_buy: Decimal, extra_sell: Decimal) -> Decimal:
        return max(abs(inputs.position + buys + extra_buy), abs(inputs.position - sells - extra_sell))

    old_buy = replaced.leaves_qty if replaced is not None and replaced.side is Side.BUY else Decimal(0)
    old_sell = replaced.leaves_qty if replaced is not None and replaced.side is Side.SELL else Decimal(0)
    before = worst(old_buy, old_sell)
    new_open = order.quantity if replaced is None else max(order.quantity - replaced.filled_qty, Decimal(0))
    after = worst(
        new_open if order.side is Side.BUY else Decimal(0),
        new_open if order.side is Side.SELL else Decimal(0),
    )
    # An order that does not increase the worst-case exposure stays allowed (e.g. reducing after a limit cut).
    if after > limit and after > before:
        out.append(
            Violation(
                Reason.MAX_POSITION,
                f"position {inputs.position} with open orders and this order could reach {after} "
                f"in {order.symbol}; the maximum is {limit}",
                limit,
                after,
            )
        )


def _open_orders(order: OrderCheck, inputs: CheckInputs, out: list[Violation]) -> None:
    cap = inputs.account.max_open_orders
    if not cap or order.amend_order_id:
        return
    count = inputs.open.count
    if count + 1 > cap:
        out.append(
            Violation(
                Reason.MAX_OPEN_ORDERS,
                f"{count} open orders; the maximum is {cap}",
                Decimal(cap),
                Decimal(count + 1),
            )
        )


def _rate(inputs: CheckInputs, out: list[Violation]) -> None:
    cap = inputs.account.max_orders_per_second
    if cap and inputs.recent_orders >= cap:
        out.append(
            Violation(
                Reason.ORDER_RATE,
                f"{inputs.recent_orders} orders in the last second; the maximum is {cap} per second",
                Decimal(cap),
                Decimal(inputs.recent_orders + 1),
            )
        )


def reduces_position(order: OrderCheck, position: Decimal) -> bool:
    if order.side is Side.SELL:
        return position > 0 and order.quantity <= position
    return position < 0 and order.quantity <= -position


def _daily_loss(order: OrderCheck, inputs: CheckInputs, out: list[Violation]) -> None:
    cap, pnl = inputs.account.daily_loss_limit, inputs.day_net_pnl
    if cap is None or pnl is None or pnl > -cap or reduces_position(order, inputs.position):
        return
    out.append(
        Violation(
            Reason.DAILY_LOSS,
            f"day net PnL {pnl} reached the daily loss limit {cap}; only position-reducing orders are allowed",
            cap,
            -pnl,
        )
    )
