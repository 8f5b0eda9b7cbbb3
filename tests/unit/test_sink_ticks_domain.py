"""sink-ticks without servers: MD messages (several events each) -> rows (exact decimals, malformed input counted),
and the ingest service retrying a failed write until the store accepts it, counting rows, batches, errors and lag."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import pytest
from trade.normalizer.v1 import events_pb2
from trade.type.v1 import decimal_pb2, market_data_pb2, order_pb2, venue_pb2

from services.sink_ticks.adapters import codec
from services.sink_ticks.adapters.codec import decode_batch
from services.sink_ticks.domain.model import QuoteRow, TickBatch, TradeRow
from services.sink_ticks.domain.service import TickIngest
from tests.support.marketdata import md_message


def D(value: str) -> decimal_pb2.Decimal:
    return decimal_pb2.Decimal(value=value)


def trade_event(seq: int, price: str = "64123.45", qty: str = "0.00012") -> events_pb2.MarketDataEvent:
    return events_pb2.MarketDataEvent(
        event_id=f"trade:BTCUSDT:{seq}",
        publish_time_ns=3_000,
        trade=market_data_pb2.Trade(
            symbol="BTCUSDT", venue=venue_pb2.VENUE_BINANCE_SPOT, trade_id=f"T{seq}", price=D(price),
            quantity=D(qty), aggressor_side=order_pb2.SIDE_SELL, sequence=seq, event_time_ns=1_000,
            receive_time_ns=2_000,
        ),
    )  # fmt: skip


def quote_event(seq: int) -> events_pb2.MarketDataEvent:
    return events_pb2.MarketDataEvent(
        event_id=f"quote:ETHUSDT:{seq}",
        quote=market_data_pb2.Quote(symbol="ETHUSDT", venue=venue_pb2.VENUE_PRISM, bid_price=D(f"3000.{seq}"),
                                    bid_size=D("2"), sequence=seq, receive_time_ns=5_000),
    )  # fmt: skip


def trade_bytes(seq: int, price: str = "64123.45", qty: str = "0.00012") -> bytes:
    """An MD message carrying one trade."""
    return md_message(trade_event(seq, price, qty))


def test_a_trade_maps_to_a_row_with_exact_decimals_and_venue_tokens() -> None:
    batch = decode_batch([trade_bytes(7)])
    assert batch.trades == [
        TradeRow(
            "BTCUSDT", "binance_spot", "T7", 7, Decimal("64123.45"), Decimal("0.00012"), "sell", 1_000, 2_000, 3_000
        )
    ]
    assert isinstance(batch.trades[0].price, Decimal) and batch.malformed == 0


def test_a_quote_with_an_empty_side_maps_to_null_price_and_size() -> None:
    (row,) = decode_batch([md_message(quote_event(3))]).quotes
    assert (row.bid_price, row.bid_size, row.ask_price, row.ask_size) == (Decimal("3000.3"), Decimal("2"), None, None)
    assert row.ts_ns == 5_000  # no venue time: the receive time is the designated timestamp


def test_every_event_of_every_message_becomes_a_row_in_order() -> None:
    trades = md_message(*(trade_event(seq) for seq in range(1, 6)))
    quotes = md_message(*(quote_event(seq) for seq in range(1, 4)))
    batch = decode_batch([trades, quotes, trade_bytes(6)])
    assert [t.sequence for t in batch.trades] == [1, 2, 3, 4, 5, 6]
    assert [q.sequence for q in batch.quotes] == [1, 2, 3]
    assert (len(batch), batch.messages, batch.malformed) == (9, 3, 0)


def test_malformed_messages_and_events_are_counted_and_skipped_and_books_ignored() -> None:
    no_id = events_pb2.MarketDataEvent(trade=market_data_pb2.Trade(symbol="X", price=D("1"), quantity=D("1")))
    book = events_pb2.MarketDataEvent(book_delta=market_data_pb2.BookDelta(symbol="X", sequence=1))
    payloads = [b"\xff\xff not protobuf", md_message(), trade_bytes(1, price="1e5"), trade_bytes(2, price="NaN"),
                md_message(no_id), md_message(book), trade_bytes(3)]  # fmt: skip
    batch = decode_batch(payloads)
    assert batch.malformed == 5
    assert [t.sequence for t in batch.trades] == [3]


def test_an_invalid_event_skips_only_itself_not_the_rest_of_its_message() -> None:
    mixed = md_message(trade_event(1), trade_event(2, price="NaN"), events_pb2.MarketDataEvent(), trade_event(4))
    batch = decode_batch([mixed])
    assert [t.sequence for t in batch.trades] == [1, 4]
    assert (batch.malformed, batch.messages) == (2, 1)


def test_repeated_decimal_texts_decode_to_equal_values_and_the_decimal_cache_stays_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(codec, "_DECIMALS_MAX", 3)
    monkeypatch.setattr(codec, "_DECIMALS", {})
    prices = [f"1.{i}" for i in range(10)] + ["1.9", "1.9"]
    batch = decode_batch([trade_bytes(seq, price=p) for seq, p in enumerate(prices, 1)])
    assert [t.price for t in batch.trades] == [Decimal(p) for p in prices]
    assert len(codec._DECIMALS) <= 3
    assert decode_batch([trade_bytes(20, price="1.9x")]).malformed == 1  # a cached prefix does not pass a bad text


class FlakyWriter:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.written: list[int] = []
        self.resets = 0

    async def write(self, trades: Sequence[TradeRow], quotes: Sequence[QuoteRow]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("questdb restarting")
        self.written.append(len(trades) + len(quotes))

    async def reset(self) -> None:
        self.resets += 1


class Clock:
    def now_ns(self) -> int:
        return 10_000


async def test_a_failed_write_is_retried_until_accepted_and_only_then_counted() -> None:
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    writer = FlakyWriter(failures=3)
    ingest = TickIngest(writer, Clock(), sleep, "trades", "quotes")
    batch = decode_batch([md_message(trade_event(1), trade_event(2)), trade_bytes(3)])
    await ingest.ingest(batch)

    assert writer.written == [3] and writer.resets == 3
    assert sleeps == [0.1, 0.2, 0.4]
    trades, quotes = ingest.stats().tables
    assert (trades.rows_written, trades.batches_written, trades.write_errors) == (3, 1, 3)
    assert quotes.rows_written == 0 and quotes.write_errors == 0
    assert trades.lag_ns(10_000) == 9_000 and ingest.stats().max_lag_ns == 9_000
    assert ingest.last_write_ok


async def test_an_empty_or_all_malformed_batch_writes_nothing_but_counts_malformed() -> None:
    async def sleep(seconds: float) -> None:
        raise AssertionError("no retry expected")

    writer = FlakyWriter(failures=0)
    ingest = TickIngest(writer, Clock(), sleep, "trades", "quotes")
    await ingest.ingest(TickBatch(malformed=2))
    assert writer.written == [] and ingest.stats().malformed == 2
    assert [t.table for t in ingest.stats(frozenset({"quotes"})).tables] == ["quotes"]
