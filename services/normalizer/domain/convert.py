"""Venue-native messages -> canonical events. Pure functions over SymbolState; no I/O."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from services.normalizer.domain.model import (
    Event,
    Instrument,
    Level,
    MalformedMessage,
    PrismBookImage,
    PrismLevel,
    PrismLevelUpdate,
    PrismMessage,
    PrismTrade,
    RawMessage,
    Side,
    parse_decimal,
)
from services.normalizer.domain.state import SymbolState

NS_PER_MS = 1_000_000


@dataclass
class Converted:
    """What one raw message produced."""

    events: list[Event] = field(default_factory=list)
    gap: bool = False
    duplicate: bool = False
    venue_sequence: int = 0
    event_time_ns: int = 0


# --- PRISM ----------------------------------------------------------------------------------------------------


def _prism_level(inst: Instrument, level: PrismLevel, allow_zero: bool) -> Level:
    if level.price_ticks <= 0:
        raise MalformedMessage(f"price_ticks must be > 0, got {level.price_ticks}")
    if level.quantity_lots < 0 or (level.quantity_lots == 0 and not allow_zero):
        raise MalformedMessage(f"quantity_lots out of range: {level.quantity_lots}")
    return Level(
        (inst.tick_size * level.price_ticks).normalize(),
        (inst.lot_size * level.quantity_lots).normalize(),
        level.order_count,
    )


def convert_prism(state: SymbolState, inst: Instrument, msg: PrismMessage, recv_ns: int) -> Converted:
    """PRISM speaks ticks and lots: price = price_ticks x tick_size, quantity = quantity_lots x lot_size."""
    body = msg.body
    if body is None:
        raise MalformedMessage("PrismFeedMessage without a body")
    if msg.sequence <= 0:
        raise MalformedMessage("PrismFeedMessage without a sequence")
    out = Converted(venue_sequence=msg.sequence, event_time_ns=msg.exchange_time_ns or recv_ns)
    event_ns = out.event_time_ns
    # Validate before touching state, so a malformed message changes nothing.
    if isinstance(body, PrismLevelUpdate):
        if body.side not in (Side.BUY, Side.SELL):
            raise MalformedMessage("level update without a side")
        level = _prism_level(inst, body.level, allow_zero=True)
    elif isinstance(body, PrismTrade):
        trade = _prism_level(inst, PrismLevel(body.price_ticks, body.quantity_lots, 0), allow_zero=False)
    else:
        bids = tuple(_prism_level(inst, lvl, allow_zero=False) for lvl in body.bids)
        asks = tuple(_prism_level(inst, lvl, allow_zero=False) for lvl in body.asks)
    verdict = state.check_sequence("feed", msg.sequence)
    if verdict == "duplicate":
        out.duplicate = True
        return out
    if verdict == "gap":
        out.gap = True
        state.synced = False
    if isinstance(body, PrismLevelUpdate):
        if state.synced:
            bids_d, asks_d = ((level,), ()) if body.side is Side.BUY else ((), (level,))
            out.events += state.delta(bids_d, asks_d, event_ns, recv_ns)
            out.events += state.quote_if_top_changed(event_ns, recv_ns)
    elif isinstance(body, PrismTrade):
        out.events.append(
            state.trade(str(body.trade_id), trade.price, trade.quantity, body.aggressor_side, event_ns, recv_ns)
        )
    elif isinstance(body, PrismBookImage):
        out.events.append(state.resync(bids, asks, event_ns, recv_ns))
        out.events += state.quote_if_top_changed(event_ns, recv_ns)
    return out


# --- Binance spot (JSON, as documented for the public websocket streams and REST /api/v3/depth) ---------------


def _obj(payload: bytes) -> dict[str, Any]:
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedMessage(f"not JSON: {exc}") from exc
    if isinstance(data, dict) and "stream" in data and isinstance(data.get("data"), dict):
        data = data["data"]  # combined stream wrapper {"stream": "...", "data": {...}}
    if not isinstance(data, dict):
        raise MalformedMessage("JSON payload is not an object")
    return data


def _int(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MalformedMessage(f"field {key!r} must be a non-negative integer, got {value!r}")
    return value


def _levels(data: Mapping[str, Any], key: str) -> tuple[Level, ...]:
    raw = data.get(key)
    if not isinstance(raw, list):
        raise MalformedMessage(f"field {key!r} must be a list of [price, quantity]")
    levels = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, list) or len(entry) < 2:
            raise MalformedMessage(f"{key}[{i}] must be [price, quantity]")
        price = parse_decimal(entry[0], f"{key}[{i}].price")
        if price <= 0:
            raise MalformedMessage(f"{key}[{i}].price must be > 0")
        levels.append(Level(price.normalize(), parse_decimal(entry[1], f"{key}[{i}].quantity").normalize()))
    return tuple(levels)


def _side_level(data: Mapping[str, Any], price_key: str, qty_key: str) -> Level | None:
    price = parse_decimal(data.get(price_key), price_key)
    qty = parse_decimal(data.get(qty_key), qty_key)
    if price == 0 or qty == 0:
        return None
    return Level(price.normalize(), qty.normalize())


def _binance_trade(state: SymbolState, data: Mapping[str, Any], recv_ns: int) -> Converted:
    trade_id = _int(data, "t")
    price = parse_decimal(data.get("p"), "p")
    qty = parse_decimal(data.get("q"), "q")
    if price <= 0 or qty <= 0:
        raise MalformedMessage("trade price and quantity must be > 0")
    maker = data.get("m")
    if not isinstance(maker, bool):
        raise MalformedMessage("field 'm' (buyer is maker) must be a boolean")
    event_ns = _int(data, "T") * NS_PER_MS if "T" in data else recv_ns
    out = Converted(venue_sequence=trade_id, event_time_ns=event_ns)
    # Trade ids are increasing but a stream may skip ids (not a book gap): order only, no contiguity.
    if state.check_sequence("trade", trade_id, contiguous=False) == "duplicate":
        out.duplicate = True
        return out
    aggressor = Side.SELL if maker else Side.BUY  # the buyer was the maker, so the seller took liquidity
    out.events.append(state.trade(str(trade_id), price.normalize(), qty.normalize(), aggressor, event_ns, recv_ns))
    return out


def _binance_book_ticker(state: SymbolState, data: Mapping[str, Any], recv_ns: int) -> Converted:
    update_id = _int(data, "u")
    bid = _side_level(data, "b", "B")
    ask = _side_level(data, "a", "A")
    event_ns = _int(data, "E") * NS_PER_MS if "E" in data else recv_ns
    out = Converted(venue_sequence=update_id, event_time_ns=event_ns)
    if state.check_sequence("ticker", update_id, contiguous=False) == "duplicate":
        out.duplicate = True
        return out
    out.events.append(state.quote(bid, ask, event_ns, recv_ns))
    return out


def _binance_depth_snapshot(state: SymbolState, data: Mapping[str, Any], recv_ns: int) -> Converted:
    last_update_id = _int(data, "lastUpdateId")
    bids, asks = _levels(data, "bids"), _levels(data, "asks")
    out = Converted(venue_sequence=last_update_id, event_time_ns=recv_ns)
    state.last_venue["depth"] = last_update_id
    state.last_venue.pop("depth_first", None)
    out.events.append(state.resync(bids, asks, recv_ns, recv_ns))
    return out


def _binance_depth_update(state: SymbolState, data: Mapping[str, Any], recv_ns: int) -> Converted:
    first, final = _int(data, "U"), _int(data, "u")
    if first > final:
        raise MalformedMessage(f"depthUpdate with U {first} > u {final}")
    bids, asks = _levels(data, "b"), _levels(data, "a")
    event_ns = _int(data, "E") * NS_PER_MS if "E" in data else recv_ns
    out = Converted(venue_sequence=final, event_time_ns=event_ns)
    last = state.last_venue.get("depth")
    if last is not None and final <= last:
        out.duplicate = True  # already contained in the snapshot or seen before
        return out
    if not state.synced or last is None:
        return out  # waiting for a REST snapshot (the adapter publishes one after connecting or a gap)
    # Binance: the first event after the snapshot has U <= lastUpdateId + 1 <= u; later ones U == previous u + 1.
    if first > last + 1:
        out.gap = True
        state.synced = False
        state.last_venue["depth"] = final
        return out
    state.last_venue["depth"] = final
    out.events += state.delta(bids, asks, event_ns, recv_ns)
    return out


def convert_binance(state: SymbolState, raw: RawMessage) -> Converted:
    data = _obj(raw.payload)
    recv_ns = raw.receive_time_ns
    kind = data.get("e")
    if kind == "trade":
        return _binance_trade(state, data, recv_ns)
    if kind == "depthUpdate":
        return _binance_depth_update(state, data, recv_ns)
    if kind is None and "lastUpdateId" in data:
        return _binance_depth_snapshot(state, data, recv_ns)
    if kind in (None, "bookTicker") and {"u", "b", "B", "a", "A"} <= data.keys():
        return _binance_book_ticker(state, data, recv_ns)
    raise MalformedMessage(f"unsupported Binance message (e={kind!r})")
