"""Binance spot public market-data messages, parsed from their documented JSON formats. Pure, no I/O.

Prices and quantities stay exact: ``Decimal`` parsed from Binance's decimal strings, never float.

Formats (combined stream ``/stream?streams=<a>/<b>``, every frame ``{"stream": "<name>", "data": {...}}``):

- ``<symbol>@trade``: ``{"e":"trade","E":event_ms,"s":"BTCUSDT","t":trade_id,"p":"price","q":"qty",
  "T":trade_ms,"m":buyer_is_maker,...}``
- ``<symbol>@bookTicker``: ``{"u":update_id,"s":"BTCUSDT","b":"bid","B":"bid_qty","a":"ask","A":"ask_qty"}``
- ``<symbol>@depth@100ms``: ``{"e":"depthUpdate","E":event_ms,"s":"BTCUSDT","U":first_id,"u":final_id,
  "b":[["price","qty"],...],"a":[...]}``
- REST ``GET /api/v3/depth``: ``{"lastUpdateId":id,"bids":[["price","qty"],...],"asks":[...]}``
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

VENUE_TOKEN = "binance_spot"


class ProtocolError(ValueError):
    """A frame or REST body that does not follow Binance's documented format."""


@dataclass(frozen=True, slots=True)
class Trade:
    """One public trade (``<symbol>@trade``)."""

    symbol: str
    trade_id: int
    price: Decimal
    quantity: Decimal
    event_time_ms: int
    trade_time_ms: int
    buyer_is_maker: bool


@dataclass(frozen=True, slots=True)
class BookTicker:
    """Best bid/ask update (``<symbol>@bookTicker``)."""

    symbol: str
    update_id: int
    bid_price: Decimal
    bid_quantity: Decimal
    ask_price: Decimal
    ask_quantity: Decimal


Level = tuple[Decimal, Decimal]


@dataclass(frozen=True, slots=True)
class DepthUpdate:
    """A diff depth event covering book update ids ``first_update_id..final_update_id`` (``U..u``).

    Quantities are absolute (the level's new total); quantity 0 removes the level.
    """

    symbol: str
    event_time_ms: int
    first_update_id: int
    final_update_id: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


@dataclass(frozen=True, slots=True)
class DepthSnapshot:
    """The REST depth snapshot (``GET /api/v3/depth``)."""

    symbol: str
    last_update_id: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


Event = Trade | BookTicker | DepthUpdate


@dataclass(frozen=True, slots=True)
class Frame:
    """One combined-stream frame: the stream name, the parsed event and the frame bytes exactly as received."""

    stream: str
    event: Event
    raw: bytes

    @property
    def symbol(self) -> str:
        return self.event.symbol

    @property
    def kind(self) -> str:
        """``trade``, ``bookTicker`` or ``depth``."""
        if isinstance(self.event, Trade):
            return "trade"
        if isinstance(self.event, BookTicker):
            return "bookTicker"
        return "depth"

    @property
    def venue_sequence(self) -> int:
        """Trade id for trades, update id ``u`` for bookTicker, final update id ``u`` for depth."""
        if isinstance(self.event, Trade):
            return self.event.trade_id
        if isinstance(self.event, BookTicker):
            return self.event.update_id
        return self.event.final_update_id


def stream_names(symbols: tuple[str, ...] | list[str], depth_interval_ms: int = 100) -> list[str]:
    """The trade, bookTicker and depth stream names of every symbol (lower case, as Binance wants them)."""
    suffix = "@depth@100ms" if depth_interval_ms == 100 else "@depth"
    names: list[str] = []
    for symbol in symbols:
        s = symbol.lower()
        names += [f"{s}@trade", f"{s}@bookTicker", f"{s}{suffix}"]
    return names


def combined_stream_url(base_url: str, symbols: tuple[str, ...] | list[str], depth_interval_ms: int = 100) -> str:
    """``wss://host:9443`` + symbols -> ``wss://host:9443/stream?streams=btcusdt@trade/...``."""
    return f"{base_url.rstrip('/')}/stream?streams={'/'.join(stream_names(symbols, depth_interval_ms))}"


def _decimal(value: Any, field: str) -> Decimal:
    if not isinstance(value, str):
        raise ProtocolError(f"{field}: expected a decimal string, got {value!r}")
    try:
        d = Decimal(value)
    except InvalidOperation as exc:
        raise ProtocolError(f"{field}: not a decimal: {value!r}") from exc
    if not d.is_finite() or d < 0:
        raise ProtocolError(f"{field}: not a finite non-negative decimal: {value!r}")
    return d


def _int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(f"{field}: expected an integer, got {value!r}")
    return value


def _str(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise ProtocolError(f"{field}: expected a non-empty string, got {value!r}")
    return value


def _levels(value: Any, field: str) -> tuple[Level, ...]:
    if not isinstance(value, list):
        raise ProtocolError(f"{field}: expected a list of [price, qty], got {value!r}")
    out: list[Level] = []
    for item in value:
        if not isinstance(item, list) or len(item) < 2:
            raise ProtocolError(f"{field}: expected [price, qty], got {item!r}")
        out.append((_decimal(item[0], f"{field}.price"), _decimal(item[1], f"{field}.qty")))
    return tuple(out)


def _field(data: dict[str, Any], key: str) -> Any:
    try:
        return data[key]
    except KeyError:
        raise ProtocolError(f"missing field {key!r}") from None


def parse_trade(data: dict[str, Any]) -> Trade:
    maker = _field(data, "m")
    if not isinstance(maker, bool):
        raise ProtocolError(f"m: expected a boolean, got {maker!r}")
    return Trade(
        symbol=_str(_field(data, "s"), "s"),
        trade_id=_int(_field(data, "t"), "t"),
        price=_decimal(_field(data, "p"), "p"),
        quantity=_decimal(_field(data, "q"), "q"),
        event_time_ms=_int(_field(data, "E"), "E"),
        trade_time_ms=_int(_field(data, "T"), "T"),
        buyer_is_maker=maker,
    )


def parse_book_ticker(data: dict[str, Any]) -> BookTicker:
    return BookTicker(
        symbol=_str(_field(data, "s"), "s"),
        update_id=_int(_field(data, "u"), "u"),
        bid_price=_decimal(_field(data, "b"), "b"),
        bid_quantity=_decimal(_field(data, "B"), "B"),
        ask_price=_decimal(_field(data, "a"), "a"),
        ask_quantity=_decimal(_field(data, "A"), "A"),
    )


def parse_depth_update(data: dict[str, Any]) -> DepthUpdate:
    first = _int(_field(data, "U"), "U")
    final = _int(_field(data, "u"), "u")
    if final < first:
        raise ProtocolError(f"depthUpdate with u={final} < U={first}")
    return DepthUpdate(
        symbol=_str(_field(data, "s"), "s"),
        event_time_ms=_int(_field(data, "E"), "E"),
        first_update_id=first,
        final_update_id=final,
        bids=_levels(_field(data, "b"), "b"),
        asks=_levels(_field(data, "a"), "a"),
    )


def parse_event(stream: str, data: dict[str, Any]) -> Event:
    """Dispatch on the event type (``e``), or on the stream name for bookTicker (which has no ``e``)."""
    kind = data.get("e")
    if kind == "trade":
        return parse_trade(data)
    if kind == "depthUpdate":
        return parse_depth_update(data)
    if kind is None and stream.endswith("@bookTicker"):
        return parse_book_ticker(data)
    raise ProtocolError(f"unsupported event {kind!r} on stream {stream!r}")


def parse_frame(raw: bytes | str) -> Frame:
    """Parse one combined-stream frame; the frame keeps the exact bytes received."""
    raw_bytes = raw.encode() if isinstance(raw, str) else raw
    try:
        doc = json.loads(raw_bytes)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ProtocolError("frame is not a JSON object")
    stream = _str(_field(doc, "stream"), "stream")
    data = _field(doc, "data")
    if not isinstance(data, dict):
        raise ProtocolError("data is not a JSON object")
    return Frame(stream=stream, event=parse_event(stream, data), raw=raw_bytes)


def parse_depth_snapshot(symbol: str, body: bytes | str) -> DepthSnapshot:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"depth snapshot is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ProtocolError("depth snapshot is not a JSON object")
    return DepthSnapshot(
        symbol=symbol,
        last_update_id=_int(_field(doc, "lastUpdateId"), "lastUpdateId"),
        bids=_levels(_field(doc, "bids"), "bids"),
        asks=_levels(_field(doc, "asks"), "asks"),
    )
