"""PRISM engine events -> feed messages -> PrismFeedMessage/RawMarketData, checked against what the normalizer
makes of them; the same seed gives the same feed."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from decimal import Decimal

from trade.normalizer.v1 import events_pb2
from trade.prism.v1 import feed_pb2

from services.normalizer.adapters.codec import decode_prism, decode_raw
from services.normalizer.domain.model import Instrument as NormInstrument
from services.normalizer.domain.model import Quote
from services.normalizer.domain.normalizer import Normalizer
from services.prism.adapters.feed_codec import PAYLOAD_TYPE, envelope, msg_id_for, subject_for, to_proto
from services.prism.domain.engine import MatchingEngine
from services.prism.domain.feed import BookImage, FeedBuilder, FeedMessage, LevelUpdate, TradePrint
from services.prism.domain.instruments import DEFAULT_INSTRUMENTS
from services.prism.domain.orders import BUY, IOC, MARKET, SELL
from services.prism.domain.participants import ParticipantKind, SimulationConfig
from services.prism.runner import ParticipantChange, RunState, SimulationRunner

BTC = DEFAULT_INSTRUMENTS[0]


class ListSink:
    def __init__(self) -> None:
        self.messages: list[FeedMessage] = []

    async def publish(self, messages: Sequence[FeedMessage]) -> None:
        self.messages += messages


def test_book_and_trade_events_become_ticks_and_lots_with_contiguous_sequences() -> None:
    engine = MatchingEngine([BTC])
    feed = FeedBuilder(engine, {"BTCUSDT": 41})
    engine.submit("BTCUSDT", 1, SELL, BTC.qty("0.5"), BTC.price("60000.05"))
    engine.submit("BTCUSDT", 2, BUY, BTC.qty("0.2"), 0, MARKET, IOC)
    msgs = feed.from_events(engine.drain(), 123)
    assert [m.sequence for m in msgs] == list(range(42, 42 + len(msgs)))
    assert msgs[0].body == LevelUpdate(SELL, 6_000_005, 50_000, 1)
    trade = next(m.body for m in msgs if isinstance(m.body, TradePrint))
    assert trade == TradePrint(1, 6_000_005, 20_000, BUY)
    assert msgs[-1].body == LevelUpdate(SELL, 6_000_005, 30_000, 1)
    image = feed.image("BTCUSDT", 456)
    assert image.sequence == msgs[-1].sequence + 1
    assert image.body == BookImage((), ((6_000_005, 30_000, 1),))


def test_protobuf_envelope_matches_the_contract() -> None:
    msg = FeedMessage("BTCUSDT", 7, 99, TradePrint(3, 6_000_001, 5, SELL))
    raw = events_pb2.RawMarketData.FromString(envelope(msg, 100))
    assert raw.format == events_pb2.RAW_PAYLOAD_FORMAT_PROTOBUF
    assert raw.payload_type == PAYLOAD_TYPE == "trade.prism.v1.PrismFeedMessage"
    assert raw.venue_sequence == 7 and raw.symbol == "BTCUSDT"
    pb = feed_pb2.PrismFeedMessage.FromString(raw.payload)
    assert pb.WhichOneof("body") == "trade" and pb.trade.price_ticks == 6_000_001 and pb.sequence == 7
    assert subject_for("BTCUSDT") == "md.raw.prism.BTCUSDT" and msg_id_for(msg) == "prism:BTCUSDT:7"
    empty = to_proto(FeedMessage("BTCUSDT", 8, 99, BookImage((), ())))
    assert empty.WhichOneof("body") == "book_image"


def _runner(seed: int, sink: ListSink) -> SimulationRunner:
    return SimulationRunner(
        instruments=DEFAULT_INSTRUMENTS,
        config=SimulationConfig(seed=seed),
        sink=sink,
        message_rate=500,
        warmup_steps=500,
        clock=lambda: 1_000_000_000,
    )


def _strip(messages: Sequence[FeedMessage]) -> list[tuple[str, int, object]]:
    return [(m.symbol, m.sequence, m.body) for m in messages]


def test_same_seed_same_feed_and_images_first() -> None:
    a, b, c = ListSink(), ListSink(), ListSink()
    for sink, seed in ((a, 7), (b, 7), (c, 8)):
        runner = _runner(seed, sink)
        for _ in range(5):
            asyncio.run(runner.tick(0.2))
    assert len(a.messages) >= 400
    assert _strip(a.messages) == _strip(b.messages)
    assert _strip(a.messages) != _strip(c.messages)
    assert [type(m.body) for m in a.messages[:3]] == [BookImage] * 3
    for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT"):
        seqs = [m.sequence for m in a.messages if m.symbol == symbol]
        assert seqs == list(range(1, len(seqs) + 1))


def test_rate_budget_and_pause_and_reseed() -> None:
    sink = ListSink()
    runner = _runner(1, sink)
    asyncio.run(runner.tick(0.1))  # 3 images + ~50 messages
    assert 50 <= len(sink.messages) <= 50 + 3 + 20
    asyncio.run(runner.configure(state=RunState.PAUSED))
    n = len(sink.messages)
    asyncio.run(runner.tick(0.1))
    assert len(sink.messages) == n
    asyncio.run(
        runner.configure(
            seed=5, state=RunState.RUNNING, participants=[ParticipantChange(ParticipantKind.MARKET_MAKER, True, 2)]
        )
    )
    asyncio.run(runner.tick(0.1))
    after = sink.messages[n:]
    assert [type(m.body) for m in after[:3]] == [BookImage] * 3  # a new engine: consumers resync from images
    seqs = [m.sequence for m in sink.messages if m.symbol == "BTCUSDT"]
    assert seqs == list(range(1, len(seqs) + 1))  # numbering continues across the rebuild
    assert runner.status().seed == 5


def test_normalizer_builds_the_engine_book_from_the_feed() -> None:
    sink = ListSink()
    runner = _runner(3, sink)
    for _ in range(4):
        asyncio.run(runner.tick(0.25))
    norm = Normalizer([NormInstrument(i.symbol, i.tick_size, i.lot_size) for i in DEFAULT_INSTRUMENTS], decode_prism, 0)
    quotes = 0
    for m in sink.messages:
        out = norm.handle(decode_raw(envelope(m, 5), subject_for(m.symbol), 5))
        assert out.error is None and not out.gap and not out.duplicate
        quotes += sum(1 for e in out.events if isinstance(e.payload, Quote))
    assert quotes > 0
    book = norm.symbols["BTCUSDT"].book
    bids, asks = book.levels()
    snap = runner.engine.snapshot("BTCUSDT")
    assert [(lv.price, lv.quantity) for lv in bids] == [
        (BTC.price_decimal(p), BTC.qty_decimal(q)) for p, q, _ in snap.bids
    ]
    assert [(lv.price, lv.quantity) for lv in asks] == [
        (BTC.price_decimal(p), BTC.qty_decimal(q)) for p, q, _ in snap.asks
    ]
    assert bids[0].price < asks[0].price and isinstance(bids[0].price, Decimal)
