"""ptrc netting by hand-checked scenarios and properties: average entry price, realized PnL of closed quantity,
flips, partial fills, fees converted to the quote asset, and idempotency by fill id."""

from __future__ import annotations

import itertools
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from services.ptrc.domain.book import PositionBook
from services.ptrc.domain.model import FillRecord, LoggedFill, Position, Side, split_symbol

_ids = itertools.count(1)


def fill(
    side: str, qty: str, price: str, fee: str = "0", fee_currency: str = "USDT", symbol: str = "BTCUSDT"
) -> FillRecord:
    n = next(_ids)
    return FillRecord(f"f{n}", "acct-1", symbol, Side(side), Decimal(price), Decimal(qty), Decimal(fee),
                      fee_currency, n)  # fmt: skip


def run(*fills: FillRecord, symbol: str = "BTCUSDT") -> Position:
    position = Position("acct-1", symbol)
    for f in fills:
        position = position.apply(f)
    return position


def test_two_buys_average_the_entry_and_a_partial_sale_realizes_against_it_with_fees_apart() -> None:
    p = run(fill("buy", "1", "100", fee="0.1"), fill("buy", "1", "110", fee="0.1"))
    assert (p.quantity, p.avg_entry_price, p.fees) == (Decimal(2), Decimal(105), Decimal("0.2"))
    p = p.apply(fill("sell", "1.5", "120", fee="0.18"))
    assert p.quantity == Decimal("0.5")
    assert p.avg_entry_price == Decimal(105)  # a reduction leaves the average unchanged
    assert p.realized_pnl == Decimal("22.5")  # (120 - 105) x 1.5, before fees (the contract's definition)
    assert p.fees == Decimal("0.38")
    assert p.realized_pnl - p.fees == Decimal("22.12")
    assert p.cost_basis == Decimal("52.5")
    assert (p.bought_quantity, p.sold_quantity, p.fill_count, p.version) == (Decimal(2), Decimal("1.5"), 3, 3)


def test_a_sale_through_zero_flips_to_short_at_the_fill_price() -> None:
    p = run(fill("buy", "1", "100"), fill("sell", "3", "90"))
    assert (p.quantity, p.avg_entry_price, p.realized_pnl) == (Decimal(-2), Decimal(90), Decimal(-10))
    assert p.cost_basis == Decimal(-180)
    p = p.apply(fill("buy", "2", "80"))  # covering the short at 80 earns 10 per unit
    assert (p.quantity, p.avg_entry_price, p.realized_pnl) == (Decimal(0), None, Decimal(10))
    assert p.is_flat and p.cost_basis == 0


def test_short_increases_average_and_a_cover_realizes_the_drop() -> None:
    p = run(fill("sell", "1", "100"), fill("sell", "1", "90"), fill("buy", "0.5", "80"))
    assert (p.quantity, p.avg_entry_price, p.realized_pnl) == (Decimal("-1.5"), Decimal(95), Decimal("7.5"))


def test_partial_fills_of_one_order_weight_the_average_by_quantity() -> None:
    p = run(fill("buy", "0.3", "100"), fill("buy", "0.7", "101"))
    assert (p.quantity, p.avg_entry_price) == (Decimal(1), Decimal("100.7"))


def test_a_fee_in_the_base_asset_is_converted_at_the_fill_price_and_a_quote_fee_taken_as_is() -> None:
    p = run(fill("buy", "2", "100", fee="0.002", fee_currency="BTC"), fill("buy", "1", "100", fee="0.05"))
    assert p.fees == Decimal("0.25")
    rebate = run(fill("buy", "1", "100", fee="-0.01", fee_currency="usdt"))
    assert rebate.fees == Decimal("-0.01")
    assert split_symbol("ETHFDUSD") == ("ETH", "FDUSD") and split_symbol("XYZ") == ("XYZ", "")


def test_an_average_that_does_not_terminate_is_rounded_to_18_fraction_digits() -> None:
    p = run(fill("buy", "1", "100"), fill("buy", "1", "100"), fill("buy", "1", "101"))
    assert p.avg_entry_price == Decimal("100.333333333333333333")


def test_the_book_applies_a_fill_id_once_even_within_one_batch() -> None:
    book = PositionBook()
    first = fill("buy", "1", "100")
    changes = book.apply([LoggedFill(1, first), LoggedFill(2, first)])
    assert len(changes) == 1
    assert book.apply([LoggedFill(3, first)]) == []
    assert book.get("acct-1", "BTCUSDT").quantity == Decimal(1)
    assert first.fill_id in book


_fills = st.lists(
    st.tuples(
        st.sampled_from(["buy", "sell"]),
        st.integers(min_value=1, max_value=5000).map(lambda n: Decimal(n) / 1000),
        st.integers(min_value=1, max_value=100_000).map(lambda n: Decimal(n) / 100),
    ),
    min_size=1,
    max_size=30,
)


@given(_fills, st.integers(min_value=1, max_value=100_000).map(lambda n: Decimal(n) / 100))
def test_realized_plus_unrealized_equals_cash_flow_plus_marked_position(
    fills: list[tuple[str, Decimal, Decimal]], mark: Decimal
) -> None:
    p = Position("a", "BTCUSDT")
    cash = Decimal(0)
    for side, qty, price in fills:
        f = fill(side, str(qty), str(price))
        p = p.apply(f)
        cash -= f.signed_quantity * price
    unrealized = p.quantity * (mark - (p.avg_entry_price or 0))
    assert abs(p.realized_pnl + unrealized - (cash + p.quantity * mark)) < Decimal("1e-9")
    assert p.quantity == sum((Decimal(q) if s == "buy" else -Decimal(q)) for s, q, _ in fills)
    assert (p.avg_entry_price is None) == (p.quantity == 0)


@given(_fills, st.data())
def test_redelivering_any_fills_again_changes_nothing(
    fills: list[tuple[str, Decimal, Decimal]], data: st.DataObject
) -> None:
    records = [LoggedFill(i, fill(s, str(q), str(p))) for i, (s, q, p) in enumerate(fills, start=1)]
    once, twice = PositionBook(), PositionBook()
    once.apply(records)
    twice.apply(records)
    twice.apply(data.draw(st.lists(st.sampled_from(records))))
    assert once.get("acct-1", "BTCUSDT") == twice.get("acct-1", "BTCUSDT")
