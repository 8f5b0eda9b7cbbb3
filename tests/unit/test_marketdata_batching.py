"""Batched fan-out: one encode per batch shared by every member, per-update counters, bounded slow members."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st
from trade.marketdata.v1 import marketdata_pb2
from trade.type.v1 import decimal_pb2, market_data_pb2

from services.marketdata.adapters.batches import encode_quotes, encode_trades
from services.marketdata.domain.batching import MAX_BATCH, BatchOptions, Frame, FrameQueue, coalesce
from services.marketdata.domain.hub import MarketData, QueueLimits


@dataclass(frozen=True)
class Tick:
    symbol: str
    seq: int


@dataclass
class FakeTimer:
    fn: Callable[[], None]
    delay_s: float
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class FakeClock:
    """Collects scheduled flushes; `fire()` runs the ones due (a window elapsing)."""

    timers: list[FakeTimer] = field(default_factory=list)

    def schedule(self, delay_s: float, fn: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(fn, delay_s)
        self.timers.append(timer)
        return timer

    def fire(self) -> None:
        timers, self.timers = self.timers, []
        for t in timers:
            if not t.cancelled:
                t.fn()


@dataclass
class Encoder:
    """Encodes a batch as the sequences of its ticks; counts how often it is called."""

    calls: int = 0

    def __call__(self, items: list[Tick]) -> bytes:
        self.calls += 1
        return ",".join(f"{t.symbol}:{t.seq}" for t in items).encode()


def decode(data: bytes) -> list[Tick]:
    out = []
    for part in data.decode().split(","):
        symbol, seq = part.split(":")
        out.append(Tick(symbol, int(seq)))
    return out


def hub(clock: FakeClock, enc: Encoder, limits: QueueLimits | None = None) -> MarketData[Tick]:
    return MarketData(lambda t: t.symbol, limits or QueueLimits(), enc, enc, clock.schedule)


def test_clients_that_do_not_opt_in_get_no_batch_options() -> None:
    assert BatchOptions.of(0, 0) is None
    assert BatchOptions.of(1, 50) is None
    opts = BatchOptions.of(64, 0)
    assert opts is not None and opts.max_batch == 64 and opts.window_s == 0.005
    capped = BatchOptions.of(10**6, 10**6)
    assert capped is not None and capped.max_batch == MAX_BATCH and capped.window_s == 1.0


def test_members_with_the_same_filter_share_one_encoded_frame_per_window() -> None:
    clock, enc = FakeClock(), Encoder()
    md = hub(clock, enc)
    opts = BatchOptions(100, 0.005)
    members = [md.trades.subscribe_batched(["BTCUSDT"], opts) for _ in range(50)]
    for seq in range(1, 26):
        md.on_trade(Tick("BTCUSDT", seq))
    assert all(len(m.queue) == 0 for m in members)  # held for the window
    assert [t.delay_s for t in clock.timers] == [0.005]  # one timer for the whole group
    clock.fire()
    assert enc.calls == 1
    frames = [m.queue.drain() for m in members]
    assert all(len(f) == 1 and f[0] is frames[0][0] for f in frames)  # the very same bytes object
    assert [t.seq for t in decode(frames[0][0].data)] == list(range(1, 26))
    assert md.subscriber_counts()["trades"] == 50
    assert len(md.trades.groups) == 1


def test_a_full_batch_is_sent_without_waiting_for_the_window_and_split_at_max_batch() -> None:
    clock, enc = FakeClock(), Encoder()
    md = hub(clock, enc)
    member = md.trades.subscribe_batched([], BatchOptions(10, 0.5))
    for seq in range(1, 26):
        md.on_trade(Tick("ETHUSDT", seq))
    sizes = [f.count for f in member.queue.drain()]
    assert sizes == [10, 10]  # sent as soon as full
    clock.fire()
    rest = member.queue.drain()
    assert [t.seq for t in decode(rest[0].data)] == list(range(21, 26))


def test_different_filters_get_different_groups_and_only_their_symbols() -> None:
    clock, enc = FakeClock(), Encoder()
    md = hub(clock, enc)
    opts = BatchOptions(100, 0.005)
    btc = md.trades.subscribe_batched(["BTCUSDT"], opts)
    everything = md.trades.subscribe_batched([], opts)
    md.on_trade(Tick("BTCUSDT", 1))
    md.on_trade(Tick("ETHUSDT", 1))
    clock.fire()
    assert [t.symbol for f in btc.queue.drain() for t in decode(f.data)] == ["BTCUSDT"]
    assert [t.symbol for f in everything.queue.drain() for t in decode(f.data)] == ["BTCUSDT", "ETHUSDT"]


def test_the_last_member_leaving_removes_the_group_and_cancels_its_timer() -> None:
    clock, enc = FakeClock(), Encoder()
    md = hub(clock, enc)
    opts = BatchOptions(100, 0.005)
    a = md.trades.subscribe_batched(["BTCUSDT"], opts)
    b = md.trades.subscribe_batched(["BTCUSDT"], opts)
    md.on_trade(Tick("BTCUSDT", 1))
    md.trades.unsubscribe_batched(a)
    assert md.subscriber_counts()["trades"] == 1 and not clock.timers[0].cancelled
    md.trades.unsubscribe_batched(b)
    assert clock.timers[0].cancelled
    assert md.subscriber_counts()["trades"] == 0
    assert not md.trades.groups and not md.trades.by_symbol
    clock.fire()
    assert enc.calls == 0


@settings(max_examples=60, deadline=None)
@given(
    capacity=st.integers(80, 160),  # a fast member reads after every burst of at most 80
    max_batch=st.integers(2, 32),
    bursts=st.lists(st.integers(1, 80), min_size=1, max_size=30),
    reads=st.lists(st.booleans(), min_size=30, max_size=30),
)
def test_a_slow_trade_member_stays_bounded_and_its_drops_match_the_gaps_a_fast_member_sees_none(
    capacity: int, max_batch: int, bursts: list[int], reads: list[bool]
) -> None:
    clock, enc = FakeClock(), Encoder()
    md = hub(clock, enc, QueueLimits(batched=capacity))
    opts = BatchOptions(max_batch, 0.005)
    fast = md.trades.subscribe_batched(["BTCUSDT"], opts)
    slow = md.trades.subscribe_batched(["BTCUSDT"], opts)
    fast_seen: list[int] = []
    slow_seen: list[int] = []
    seq = 0
    for burst, read in zip(bursts, reads, strict=False):
        for _ in range(burst):
            seq += 1
            md.on_trade(Tick("BTCUSDT", seq))
        clock.fire()
        fast_seen += [t.seq for f in fast.queue.drain() for t in decode(f.data)]
        assert len(slow.queue) <= max(capacity, max_batch)
        if read:
            slow_seen += [t.seq for f in slow.queue.drain() for t in decode(f.data)]
    slow_seen += [t.seq for f in slow.queue.drain() for t in decode(f.data)]
    assert fast_seen == list(range(1, seq + 1)) and fast.queue.dropped == 0
    assert slow_seen == sorted(slow_seen)
    gaps = sum(b - a - 1 for a, b in zip([0, *slow_seen], [*slow_seen, seq + 1], strict=True))
    assert gaps == slow.queue.dropped
    assert slow.queue.conflated == 0


def test_a_quote_batch_holds_the_latest_quote_per_symbol_and_counts_the_replaced_ones() -> None:
    clock, enc = FakeClock(), Encoder()
    md = hub(clock, enc)
    member = md.subscribe_quotes_batched([], BatchOptions(100, 0.005))
    for seq in range(1, 11):
        md.on_quote(Tick("BTCUSDT", seq))
        md.on_quote(Tick("ETHUSDT", seq))
    clock.fire()
    (frame,) = member.queue.drain()
    assert decode(frame.data) == [Tick("BTCUSDT", 10), Tick("ETHUSDT", 10)]
    assert member.queue.conflated == 18


def test_an_overflowing_quote_member_catches_up_with_the_latest_quotes_and_counts_them_conflated() -> None:
    clock, enc = FakeClock(), Encoder()
    md = hub(clock, enc, QueueLimits(batched=4))
    member = md.subscribe_quotes_batched(["A", "B", "C"], BatchOptions(100, 0.005))
    for seq in range(1, 6):
        for s in "ABC":
            md.on_quote(Tick(s, seq))
        clock.fire()  # 3 quotes per frame; the second frame overflows 4
    assert member.queue.catch_up and len(member.queue) == 0
    assert member.queue.conflated == 15  # every quote of the five frames: none reached the client
    member.queue.caught_up()
    (catch_up,) = md.latest_quotes_frames(member)
    assert decode(catch_up) == [Tick("A", 5), Tick("B", 5), Tick("C", 5)]
    md.on_quote(Tick("A", 6))
    clock.fire()
    assert [decode(f.data) for f in member.queue.drain()] == [[Tick("A", 6)]]


def test_a_new_quote_member_starts_with_the_latest_quote_of_its_symbols_in_batches() -> None:
    clock, enc = FakeClock(), Encoder()
    md = hub(clock, enc)
    for s in ("A", "B", "C", "D", "E"):
        md.on_quote(Tick(s, 7))
    member = md.subscribe_quotes_batched(["A", "B", "C", "E"], BatchOptions(3, 0.005))
    frames = md.latest_quotes_frames(member)
    assert [[t.symbol for t in decode(f)] for f in frames] == [["A", "B", "C"], ["E"]]


def test_a_frame_queue_counts_updates_not_frames() -> None:
    q = FrameQueue(capacity=10, conflate=False)
    for _ in range(4):
        q.put(Frame(b"x", 4))
    assert len(q) == 8 and q.dropped == 8  # two frames of four dropped to stay within ten updates


def trade_pb(symbol: str, seq: int) -> market_data_pb2.Trade:
    return market_data_pb2.Trade(
        symbol=symbol, trade_id=str(seq), sequence=seq, price=decimal_pb2.Decimal(value="100.25")
    )


@settings(max_examples=50, deadline=None)
@given(seqs=st.lists(st.integers(0, 2**62), max_size=300), symbol=st.text("ABCXYZ019_-", min_size=1, max_size=32))
def test_batch_wire_bytes_are_exactly_the_protobuf_serialization(seqs: list[int], symbol: str) -> None:
    trades = [trade_pb(symbol, s) for s in seqs]
    expected = marketdata_pb2.StreamTradesResponse(batch=marketdata_pb2.TradeBatch(trades=trades))
    assert encode_trades(trades) == expected.SerializeToString()
    quotes = [market_data_pb2.Quote(symbol=symbol, sequence=s) for s in seqs]
    parsed = marketdata_pb2.StreamQuotesResponse.FromString(encode_quotes(quotes))
    assert parsed.WhichOneof("payload") == "batch" and list(parsed.batch.quotes) == quotes


@settings(max_examples=100, deadline=None)
@given(counts=st.lists(st.integers(1, 50), max_size=40), max_count=st.integers(1, 120))
def test_queued_frames_coalesce_in_order_into_runs_within_max_batch(counts: list[int], max_count: int) -> None:
    frames = [Frame(str(i).encode(), c) for i, c in enumerate(counts)]
    runs = coalesce(frames, max_count)
    assert [f for run in runs for f in run] == frames  # nothing lost, nothing reordered
    for run in runs:
        assert len(run) == 1 or sum(f.count for f in run) <= max_count
    for a, b in itertools.pairwise(runs):
        assert sum(f.count for f in a) + b[0].count > max_count  # a run only ends when the next frame won't fit


def test_concatenated_batch_messages_parse_as_one_batch_with_all_updates_in_order() -> None:
    first = [trade_pb("BTCUSDT", s) for s in range(1, 4)]
    second = [trade_pb("ETHUSDT", s) for s in range(4, 6)]
    merged = marketdata_pb2.StreamTradesResponse.FromString(encode_trades(first) + encode_trades(second))
    assert merged.WhichOneof("payload") == "batch"
    assert list(merged.batch.trades) == first + second
