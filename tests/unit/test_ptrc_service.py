"""The ptrc position service with fake log, publisher and listener: publish-then-commit, rebuild from the log,
reconciliation reports and repairs differences, and the servicer's validation and paging."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest
from trade.ptrc.v1 import ptrc_pb2

from services.ptrc.adapters.codec import MalformedFill, decode_fill, format_decimal
from services.ptrc.adapters.hub import PositionHub
from services.ptrc.domain.book import PositionBook
from services.ptrc.domain.model import FillRecord, LoggedFill, PositionChange, Side
from services.ptrc.domain.service import PositionService
from services.ptrc.servicer import PtrcServicer, decode_token, encode_token
from services.runtime.errors import DomainError, ErrorKind


def fill(n: int, side: str, qty: str, price: str, account: str = "A1", symbol: str = "BTCUSDT") -> LoggedFill:
    record = FillRecord(f"f{n}", account, symbol, Side(side), Decimal(price), Decimal(qty), Decimal("0.1"), "USDT", n)
    return LoggedFill(n, record)


class FakeLog:
    def __init__(self, fills: list[LoggedFill]) -> None:
        self.fills = fills
        self.filters: list[str] = []

    async def last_sequence(self) -> int:
        return max((f.sequence for f in self.fills), default=0)

    async def replay(self, filter_subject: str, up_to_sequence: int) -> list[LoggedFill]:
        self.filters.append(filter_subject)
        return [f for f in self.fills if f.sequence <= up_to_sequence]


class FakePublisher:
    def __init__(self) -> None:
        self.events: list[PositionChange] = []
        self.fail = False

    async def publish(self, changes: Sequence[PositionChange]) -> None:
        if self.fail:
            raise ConnectionError("nats down")
        self.events.extend(changes)


def service(log: FakeLog, publisher: FakePublisher, hub: PositionHub | None = None) -> PositionService:
    return PositionService(PositionBook(), log, publisher, hub or PositionHub(), "fills.>", "fills.{account}.>")


async def test_a_batch_is_committed_only_after_its_events_were_published() -> None:
    publisher = FakePublisher()
    svc = service(FakeLog([]), publisher)
    batch = [fill(1, "buy", "1", "100"), fill(2, "buy", "1", "110")]
    publisher.fail = True
    with pytest.raises(ConnectionError):
        await svc.handle(batch)
    assert svc.book.get("A1", "BTCUSDT").quantity == 0
    publisher.fail = False
    await svc.handle(batch)  # the redelivery
    await svc.handle(batch)  # and a duplicate of it
    assert [e.event_id for e in publisher.events] == ["A1:BTCUSDT:1", "A1:BTCUSDT:2"]
    assert svc.book.get("A1", "BTCUSDT").avg_entry_price == Decimal(105)
    assert svc.book.sequence == 2


async def test_rebuild_replays_the_log_and_republishes_only_what_the_consumer_had_not_acknowledged() -> None:
    log = FakeLog([fill(1, "buy", "1", "100"), fill(2, "sell", "1", "120"), fill(3, "buy", "2", "90")])
    publisher = FakePublisher()
    svc = service(log, publisher)
    assert await svc.rebuild(acknowledged_sequence=2) == 3
    assert [e.fill_id for e in publisher.events] == ["f3"]
    p = svc.book.get("A1", "BTCUSDT")
    assert (p.quantity, p.realized_pnl, p.version, svc.ready) == (Decimal(2), Decimal(20), 3, True)


async def test_reconcile_reports_nothing_when_the_book_matches_the_log() -> None:
    log = FakeLog(
        [
            fill(1, "buy", "1", "100"),
            fill(2, "buy", "1", "100", symbol="ETHUSDT"),
            fill(3, "sell", "1", "1", account="B"),
        ]
    )
    svc = service(log, FakePublisher())
    await svc.rebuild(0)
    report = await svc.reconcile("A1", frozenset(), apply=False)
    assert report.differences == () and report.symbols_checked == 2 and report.fills_replayed == 3
    assert log.filters[-1] == "fills.A1.>"


async def test_reconcile_reports_a_missing_fill_and_apply_replaces_the_position_as_a_new_version() -> None:
    log = FakeLog([fill(1, "buy", "1", "100"), fill(2, "buy", "1", "110")])
    publisher, hub = FakePublisher(), PositionHub()
    svc = service(log, publisher, hub)
    await svc.handle([log.fills[0]])
    svc.book.sequence = 2  # the live consumer saw sequence 2 but (say) lost the fill
    sub = hub.subscribe("A1", frozenset())
    report = await svc.reconcile("A1", frozenset(), apply=False)
    (diff,) = report.differences
    assert (diff.quantity_difference, diff.mismatched_fill_ids, report.applied) == (Decimal(1), ("f2",), False)
    assert diff.stored is not None and diff.stored.quantity == 1 and diff.recomputed.avg_entry_price == 105

    report = await svc.reconcile("A1", frozenset(), apply=True)
    assert report.applied
    fixed = svc.book.get("A1", "BTCUSDT")
    assert (fixed.quantity, fixed.version) == (Decimal(2), 3)
    assert publisher.events[-1].reconciliation and publisher.events[-1].event_id == "A1:BTCUSDT:3"
    assert sub.drain() == [fixed]
    assert (await svc.reconcile("A1", frozenset(), apply=False)).differences == ()
    await svc.handle([log.fills[1]])  # the lost fill arriving late is now a duplicate
    assert svc.book.get("A1", "BTCUSDT").quantity == 2


async def test_a_fill_redelivered_after_later_ones_leaves_the_position_a_replay_of_the_log_would_hold() -> None:
    # In log order: long 1 @ 100, closed at 120 (+20), long 1 @ 90. Applied in delivery order 1, 3, 2 it would be
    # long 2 @ 95 closed at 120 (+25), long 1 @ 95.
    log = FakeLog([fill(1, "buy", "1", "100"), fill(2, "sell", "1", "120"), fill(3, "buy", "1", "90")])
    publisher, hub = FakePublisher(), PositionHub()
    svc = service(log, publisher, hub)
    sub = hub.subscribe("A1", frozenset())
    await svc.handle([log.fills[0]])
    await svc.handle([log.fills[2]])  # the batch holding fill 2 failed; JetStream redelivers it after ack_wait
    await svc.handle([log.fills[1]])

    p = svc.book.get("A1", "BTCUSDT")
    assert (p.quantity, p.avg_entry_price, p.realized_pnl, p.fill_count) == (Decimal(1), Decimal(90), Decimal(20), 3)
    assert (p.last_fill_id, p.version) == ("f3", 4)
    assert publisher.events[-1].reconciliation and publisher.events[-1].event_id == "A1:BTCUSDT:4"
    assert sub.drain()[-1] == p
    assert svc.book.fill_ids("A1", "BTCUSDT") == {"f1", "f2", "f3"}
    assert (await svc.reconcile("A1", frozenset(), apply=False)).differences == ()
    await svc.handle([log.fills[1]])  # a further redelivery is a duplicate
    assert svc.book.get("A1", "BTCUSDT").version == 4


async def test_fills_out_of_log_order_within_one_batch_are_recomputed_and_other_positions_applied() -> None:
    log = FakeLog(
        [
            fill(1, "buy", "1", "100"),
            fill(2, "sell", "1", "120"),
            fill(3, "buy", "1", "90"),
            fill(4, "buy", "2", "10", symbol="ETHUSDT"),
        ]
    )
    svc = service(log, FakePublisher())
    await svc.handle([log.fills[0], log.fills[2], log.fills[3], log.fills[1]])
    btc, eth = svc.book.get("A1", "BTCUSDT"), svc.book.get("A1", "ETHUSDT")
    assert (btc.quantity, btc.avg_entry_price, btc.realized_pnl) == (Decimal(1), Decimal(90), Decimal(20))
    assert (eth.quantity, eth.version) == (Decimal(2), 1)
    assert svc.book.sequence == 4 and svc.book.sequence_of("A1", "BTCUSDT") == 3


async def test_a_log_read_failing_while_recomputing_commits_nothing_of_the_batch() -> None:
    log = FakeLog([fill(1, "buy", "1", "100"), fill(2, "sell", "1", "120"), fill(3, "buy", "1", "90")])
    svc = service(log, FakePublisher())
    await svc.handle([log.fills[0]])
    await svc.handle([log.fills[2]])

    async def unavailable(filter_subject: str, up_to_sequence: int) -> list[LoggedFill]:
        raise DomainError("DEPENDENCY_UNAVAILABLE", "nats down", ErrorKind.UNAVAILABLE)

    svc._log.replay = unavailable  # type: ignore[method-assign]
    with pytest.raises(DomainError):
        await svc.handle([log.fills[1]])
    assert "f2" not in svc.book and svc.book.get("A1", "BTCUSDT").quantity == 2


def test_malformed_fills_are_rejected_by_the_codec() -> None:
    from trade.type.v1 import decimal_pb2, fill_pb2, order_pb2

    good = fill_pb2.Fill(fill_id="x", account_id="A", symbol="S", side=order_pb2.SIDE_BUY,
                         price=decimal_pb2.Decimal(value="1.5"), quantity=decimal_pb2.Decimal(value="2"))  # fmt: skip
    assert decode_fill(good.SerializeToString()).price == Decimal("1.5")
    for bad in (
        fill_pb2.Fill(fill_id="x", account_id="A", symbol="S", side=order_pb2.SIDE_BUY,
                      price=decimal_pb2.Decimal(value="1e5"), quantity=decimal_pb2.Decimal(value="2")),
        fill_pb2.Fill(fill_id="x", account_id="A", symbol="S", price=decimal_pb2.Decimal(value="1"),
                      quantity=decimal_pb2.Decimal(value="2")),
        fill_pb2.Fill(fill_id="x", account_id="A", symbol="S", side=order_pb2.SIDE_SELL,
                      price=decimal_pb2.Decimal(value="1"), quantity=decimal_pb2.Decimal(value="0")),
    ):  # fmt: skip
        with pytest.raises(MalformedFill):
            decode_fill(bad.SerializeToString())
    with pytest.raises(MalformedFill):
        decode_fill(b"\xff\xff")
    assert [format_decimal(Decimal(v)) for v in ("100.500", "-0.0", "1E+2", "0.000001")] == [
        "100.5",
        "0",
        "100",
        "0.000001",
    ]


async def test_list_positions_pages_by_symbol_and_rejects_bad_input() -> None:
    svc = service(FakeLog([]), FakePublisher())
    await svc.rebuild(0)
    await svc.handle([fill(i, "buy", "1", "10", symbol=f"S{i}USDT") for i in range(1, 6)])
    servicer = PtrcServicer(svc, PositionHub(), 5.0)
    ctx: Any = None
    first = await servicer.ListPositions(ptrc_pb2.ListPositionsRequest(account_id="A1", page_size=3), ctx)
    rest = await servicer.ListPositions(
        ptrc_pb2.ListPositionsRequest(account_id="A1", page_size=3, page_token=first.next_page_token), ctx
    )
    assert [p.symbol for p in first.positions] == ["S1USDT", "S2USDT", "S3USDT"]
    assert [p.symbol for p in rest.positions] == ["S4USDT", "S5USDT"] and rest.next_page_token == ""
    flat = await servicer.GetPosition(ptrc_pb2.GetPositionRequest(account_id="A1", symbol="NEVERUSDT"), ctx)
    assert flat.position.quantity.value == "0" and not flat.position.HasField("avg_entry_price")
    for bad in (
        ptrc_pb2.ListPositionsRequest(account_id="", page_size=1),
        ptrc_pb2.ListPositionsRequest(account_id="A1", page_size=-1),
        ptrc_pb2.ListPositionsRequest(account_id="A1", page_token="garbage!"),
    ):
        with pytest.raises(DomainError) as err:
            await servicer.ListPositions(bad, ctx)
        assert err.value.kind is ErrorKind.INVALID_ARGUMENT
    assert decode_token(encode_token("BTCUSDT")) == "BTCUSDT"
    with pytest.raises(DomainError):
        await servicer.GetPosition(ptrc_pb2.GetPositionRequest(account_id="A1", symbol=""), ctx)


class StreamContext:
    def __init__(self) -> None:
        self.sent: list[ptrc_pb2.StreamPositionsResponse] = []

    async def write(self, message: ptrc_pb2.StreamPositionsResponse) -> None:
        self.sent.append(message)


async def test_stream_positions_sends_the_snapshot_a_marker_then_conflated_changes_of_chosen_symbols() -> None:
    hub = PositionHub()
    svc = service(FakeLog([]), FakePublisher(), hub)
    await svc.rebuild(0)
    await svc.handle([fill(1, "buy", "1", "100"), fill(2, "buy", "1", "10", symbol="ETHUSDT")])
    servicer = PtrcServicer(svc, hub, 0.05)
    ctx = StreamContext()
    request = ptrc_pb2.StreamPositionsRequest(account_id="A1", symbols=["BTCUSDT"])
    task = asyncio.create_task(servicer.StreamPositions(request, ctx))  # type: ignore[arg-type]
    try:
        await asyncio.sleep(0.01)
        assert [m.WhichOneof("payload") for m in ctx.sent] == ["update", "heartbeat"]
        assert ctx.sent[0].update.snapshot and ctx.sent[0].update.position.symbol == "BTCUSDT"
        # Two changes before the stream runs again: only the latest is sent; ETHUSDT is not wanted.
        await svc.handle(
            [fill(3, "buy", "1", "110"), fill(4, "sell", "1", "120"), fill(5, "buy", "1", "1", symbol="ETHUSDT")]
        )
        await asyncio.sleep(0.02)
        live = [m.update for m in ctx.sent[2:] if m.HasField("update")]
        assert [(u.snapshot, u.position.quantity.value, u.position.version) for u in live] == [(False, "1", 3)]
        await asyncio.sleep(0.1)
        assert ctx.sent[-1].HasField("heartbeat") and ctx.sent[-1].heartbeat.conflated_count == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert hub.count == 0
