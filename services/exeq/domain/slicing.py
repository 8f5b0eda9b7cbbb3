"""Slicing schedules: deterministic functions of the parent's parameters (and, for POV, the observed volume).

A schedule is a list of slices with *cumulative* targets in whole lots: slice i is due at due_ns[i] and by then
cum_target[i] should have been sent. Cumulative targets are floor(total * W_i / W) for the cumulative weight W_i,
so they never decrease, never exceed the parent quantity, and the last one is exactly the parent quantity. A
runner sends target - committed at each slice, which also catches up quantity that earlier children left unfilled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

NS_PER_MINUTE = 60_000_000_000
NS_PER_DAY = 86_400_000_000_000


@dataclass(frozen=True)
class Slice:
    due_ns: int
    cum_target: Decimal  # quantity to have sent by due_ns, cumulative
    quantity: Decimal  # this slice's own part (cum_target minus the previous one)


def to_lots(quantity: Decimal, lot: Decimal) -> int:
    """Whole lots in quantity (floor)."""
    return int(quantity // lot)


def is_lot_multiple(quantity: Decimal, lot: Decimal) -> bool:
    return quantity % lot == 0


def default_slice_count(duration_ns: int) -> int:
    """0 slices in the request means one per minute of duration (at least one)."""
    return max(1, duration_ns // NS_PER_MINUTE)


def cumulative_lots(total_lots: int, weights: Sequence[Fraction]) -> list[int]:
    """floor(total * cumulative weight / total weight) per slice; equal weights when all are zero."""
    if not weights:
        return []
    if sum(weights) <= 0:
        weights = [Fraction(1)] * len(weights)
    whole = sum(weights)
    out, running = [], Fraction(0)
    for w in weights:
        running += w
        out.append(int(total_lots * running / whole))
    out[-1] = total_lots
    return out


def _slices(due: Sequence[int], cum_lots: Sequence[int], lot: Decimal) -> list[Slice]:
    out: list[Slice] = []
    previous = 0
    for due_ns, cum in zip(due, cum_lots, strict=True):
        if cum > previous:
            out.append(Slice(due_ns, cum * lot, (cum - previous) * lot))
        previous = cum
    return out


def slice_times(start_ns: int, duration_ns: int, count: int) -> list[int]:
    """Equal intervals: the first slice at the start, the last one interval before the end."""
    return [start_ns + duration_ns * i // count for i in range(count)]


def twap_schedule(quantity: Decimal, lot: Decimal, start_ns: int, duration_ns: int, slice_count: int) -> list[Slice]:
    """Equal slices at equal intervals. Slices that would round to zero lots are dropped."""
    count = slice_count or default_slice_count(duration_ns)
    cum = cumulative_lots(to_lots(quantity, lot), [Fraction(1)] * count)
    return _slices(slice_times(start_ns, duration_ns, count), cum, lot)


class VolumeProfile:
    """An intraday volume profile: relative weights of equal buckets covering a UTC day (e.g. 24 hourly ones)."""

    def __init__(self, weights: Sequence[Decimal]) -> None:
        if not weights or any(w < 0 for w in weights):
            raise ValueError("a volume profile needs at least one non-negative weight")
        self.weights = [Fraction(w) for w in weights]
        self.bucket_ns = NS_PER_DAY // len(self.weights)

    def weight(self, start_ns: int, end_ns: int) -> Fraction:
        """Profile weight between two instants: each bucket's weight times the fraction of it covered."""
        total = Fraction(0)
        t = start_ns
        while t < end_ns:
            index = (t % NS_PER_DAY) // self.bucket_ns
            bucket_end = t - (t % NS_PER_DAY) % self.bucket_ns + self.bucket_ns
            upto = min(end_ns, bucket_end)
            total += self.weights[min(index, len(self.weights) - 1)] * Fraction(upto - t, self.bucket_ns)
            t = upto
        return total


def vwap_schedule(
    quantity: Decimal, lot: Decimal, start_ns: int, duration_ns: int, slice_count: int, profile: VolumeProfile
) -> list[Slice]:
    """Slices at equal intervals, each sized by the profile's expected volume over its interval."""
    count = slice_count or default_slice_count(duration_ns)
    due = slice_times(start_ns, duration_ns, count)
    ends = [*due[1:], start_ns + duration_ns]
    weights = [profile.weight(a, b) for a, b in zip(due, ends, strict=True)]
    return _slices(due, cumulative_lots(to_lots(quantity, lot), weights), lot)


def immediate_schedule(quantity: Decimal, start_ns: int) -> list[Slice]:
    return [Slice(start_ns, quantity, quantity)]


def chunk(quantity: Decimal, cap: Decimal | None, lot: Decimal) -> list[Decimal]:
    """Split one slice into child quantities of at most cap (rounded down to the lot); the sum is exact."""
    if quantity <= 0:
        return []
    if cap is None:
        return [quantity]
    size = to_lots(cap, lot) * lot
    if size <= 0:
        raise ValueError("max child quantity is below one lot")
    whole, rest = divmod(quantity, size)
    return [size] * int(whole) + ([rest] if rest else [])


def pov_target(rate: Decimal, observed_volume: Decimal, quantity: Decimal, lot: Decimal) -> Decimal:
    """Quantity a POV parent should have sent once the market traded observed_volume: rate x volume, whole lots,
    never above the parent quantity."""
    return min(quantity, to_lots(rate * observed_volume, lot) * lot)


def pov_child(
    rate: Decimal, observed_volume: Decimal, quantity: Decimal, committed: Decimal, lot: Decimal, min_child: Decimal
) -> Decimal:
    """The next POV child quantity (0: nothing to send yet). Small remainders wait until min_child is reached,
    except the last one, which completes the parent."""
    due = pov_target(rate, observed_volume, quantity, lot) - committed
    if due <= 0:
        return Decimal(0)
    if due < min_child and committed + due < quantity:
        return Decimal(0)
    return due
