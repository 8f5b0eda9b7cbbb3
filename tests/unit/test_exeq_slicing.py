"""exeq slicing schedules: exact sums on the lot size, never above the parent quantity, deterministic."""

from __future__ import annotations

import itertools
from decimal import Decimal
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from services.exeq.domain.slicing import (
    NS_PER_DAY,
    NS_PER_MINUTE,
    VolumeProfile,
    chunk,
    cumulative_lots,
    pov_child,
    pov_target,
    twap_schedule,
    vwap_schedule,
)

LOTS = st.sampled_from([Decimal("0.00001"), Decimal("0.001"), Decimal("1"), Decimal("0.5")])
SECOND = 1_000_000_000


def _assert_valid(slices: list, quantity: Decimal, lot: Decimal) -> None:  # type: ignore[type-arg]
    assert sum((s.quantity for s in slices), Decimal(0)) == quantity
    assert all(s.quantity > 0 and s.quantity % lot == 0 for s in slices)
    running = Decimal(0)
    for s in slices:
        running += s.quantity
        assert s.cum_target == running <= quantity
    assert [s.due_ns for s in slices] == sorted(s.due_ns for s in slices)


@given(lots=st.integers(1, 10**7), lot=LOTS, count=st.integers(1, 500), duration_s=st.integers(1, 86_400))
def test_twap_slices_sum_exactly_to_the_parent_quantity_in_whole_lots(
    lots: int, lot: Decimal, count: int, duration_s: int
) -> None:
    quantity = lots * lot
    slices = twap_schedule(quantity, lot, 1_000, duration_s * SECOND, count)
    _assert_valid(slices, quantity, lot)
    assert len(slices) == min(count, lots)
    assert all(1_000 <= s.due_ns < 1_000 + duration_s * SECOND for s in slices)


def test_twap_is_equal_slices_at_equal_intervals_starting_now() -> None:
    slices = twap_schedule(Decimal("1.0"), Decimal("0.001"), 0, 2 * SECOND, 4)
    assert [s.quantity for s in slices] == [Decimal("0.25")] * 4
    assert [s.due_ns for s in slices] == [0, SECOND // 2, SECOND, 3 * SECOND // 2]


def test_twap_remainder_lots_are_spread_not_front_loaded() -> None:
    slices = twap_schedule(Decimal("10"), Decimal("1"), 0, 10 * SECOND, 4)
    assert [s.quantity for s in slices] == [Decimal(2), Decimal(3), Decimal(2), Decimal(3)]


def test_twap_without_slice_count_sends_one_slice_per_minute() -> None:
    assert len(twap_schedule(Decimal("100"), Decimal("1"), 0, 5 * NS_PER_MINUTE, 0)) == 5
    assert len(twap_schedule(Decimal("100"), Decimal("1"), 0, 10 * SECOND, 0)) == 1


def test_fewer_lots_than_slices_drops_the_empty_slices() -> None:
    slices = twap_schedule(Decimal("0.003"), Decimal("0.001"), 0, 10 * SECOND, 10)
    assert [s.quantity for s in slices] == [Decimal("0.001")] * 3
    assert len({s.due_ns for s in slices}) == 3


PROFILE = VolumeProfile([Decimal(w) for w in ["1", "3"] * 12])  # odd hours trade three times as much


@given(
    lots=st.integers(1, 10**6),
    lot=LOTS,
    count=st.integers(1, 200),
    start_s=st.integers(0, 86_400),
    duration_s=st.integers(1, 2 * 86_400),
)
def test_vwap_slices_sum_exactly_to_the_parent_quantity_in_whole_lots(
    lots: int, lot: Decimal, count: int, start_s: int, duration_s: int
) -> None:
    quantity = lots * lot
    slices = vwap_schedule(quantity, lot, start_s * SECOND, duration_s * SECOND, count, PROFILE)
    _assert_valid(slices, quantity, lot)


def test_vwap_weights_slices_by_the_volume_profile() -> None:
    hour = NS_PER_DAY // 24
    slices = vwap_schedule(Decimal("400"), Decimal("1"), 0, 2 * hour, 2, PROFILE)
    assert [s.quantity for s in slices] == [Decimal(100), Decimal(300)]
    assert [s.due_ns for s in slices] == [0, hour]


def test_vwap_with_a_flat_zero_profile_falls_back_to_equal_slices() -> None:
    flat = VolumeProfile([Decimal(0)] * 24)
    slices = vwap_schedule(Decimal("4"), Decimal("1"), 0, 4 * SECOND, 4, flat)
    assert [s.quantity for s in slices] == [Decimal(1)] * 4


def test_profile_weight_covers_partial_buckets_across_midnight() -> None:
    hour = NS_PER_DAY // 24
    # 23:30 -> 00:30: half of hour 23 (weight 3) and half of hour 0 (weight 1)
    assert PROFILE.weight(NS_PER_DAY - hour // 2, NS_PER_DAY + hour // 2) == 2


@given(total=st.integers(0, 10**9), weights=st.lists(st.integers(0, 1000), min_size=1, max_size=50))
def test_cumulative_lots_never_decrease_and_end_at_the_total(total: int, weights: list[int]) -> None:
    cum = cumulative_lots(total, [Fraction(w) for w in weights])
    assert cum[-1] == total
    assert all(a <= b for a, b in itertools.pairwise(cum))
    assert all(0 <= c <= total for c in cum)


@given(lots=st.integers(1, 10**4), cap_lots=st.integers(1, 1000), lot=LOTS)
def test_chunks_respect_the_child_cap_and_sum_exactly(lots: int, cap_lots: int, lot: Decimal) -> None:
    parts = chunk(lots * lot, cap_lots * lot, lot)
    assert sum(parts, Decimal(0)) == lots * lot
    assert all(0 < p <= cap_lots * lot and p % lot == 0 for p in parts)


def test_chunk_cap_is_rounded_down_to_the_lot() -> None:
    assert chunk(Decimal("1.0"), Decimal("0.45"), Decimal("0.1")) == [Decimal("0.4"), Decimal("0.4"), Decimal("0.2")]


def test_pov_target_is_the_rate_of_observed_volume_in_whole_lots_capped_at_the_quantity() -> None:
    assert pov_target(Decimal("0.1"), Decimal("12.34"), Decimal("5"), Decimal("0.01")) == Decimal("1.23")
    assert pov_target(Decimal("0.5"), Decimal("1000"), Decimal("5"), Decimal("0.01")) == Decimal("5")


def test_pov_child_waits_for_the_minimum_size_except_for_the_last_one() -> None:
    lot, rate, qty = Decimal("1"), Decimal("0.1"), Decimal("10")
    assert pov_child(rate, Decimal("25"), qty, Decimal(0), lot, Decimal(5)) == 0  # 2 due, min 5
    assert pov_child(rate, Decimal("55"), qty, Decimal(0), lot, Decimal(5)) == 5
    assert pov_child(rate, Decimal("1000"), qty, Decimal(8), lot, Decimal(5)) == 2  # completes the parent
    assert pov_child(rate, Decimal("40"), qty, Decimal(4), lot, Decimal(1)) == 0  # nothing due yet


@given(
    rate=st.sampled_from([Decimal("0.01"), Decimal("0.1"), Decimal("0.25"), Decimal("0.5")]),
    trades=st.lists(st.integers(1, 10_000), max_size=200),
    lots=st.integers(1, 10_000),
)
def test_pov_children_never_exceed_the_parent_or_the_participation(rate: Decimal, trades: list[int], lots: int) -> None:
    lot, volume, committed = Decimal("0.001"), Decimal(0), Decimal(0)
    quantity = lots * lot
    for t in trades:
        volume += t * lot
        due = pov_child(rate, volume, quantity, committed, lot, lot)
        assert due >= 0 and due % lot == 0
        committed += due
        assert committed <= quantity
        assert committed <= rate * volume
