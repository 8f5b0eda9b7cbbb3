"""Reconnect backoff and REST weight/Retry-After pacing."""

from __future__ import annotations

import random

import pytest

from services.feeds.binance.client import depth_request_weight
from services.feeds.binance.ratelimit import Backoff, RestWeightGovernor, parse_retry_after


def test_backoff_grows_exponentially_with_jitter_up_to_the_cap() -> None:
    backoff = Backoff(initial_s=1.0, cap_s=8.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(6)]
    for delay, base in zip(delays, [1, 2, 4, 8, 8, 8], strict=True):
        assert base / 2 <= delay <= base
    assert len(set(delays)) == len(delays)  # jittered, not lock-step


def test_backoff_reset_starts_over() -> None:
    backoff = Backoff(initial_s=1.0, cap_s=8.0, rng=random.Random(1))
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() <= 1.0


def test_governor_lets_requests_through_under_the_weight_headroom() -> None:
    governor = RestWeightGovernor(limit_per_minute=6000, headroom=0.8)
    governor.observe_used_weight(1000, now=120.0)
    assert governor.delay_before(50, now=121.0) == 0


def test_governor_waits_for_the_next_minute_when_the_used_weight_is_near_the_limit() -> None:
    governor = RestWeightGovernor(limit_per_minute=6000, headroom=0.8)
    governor.observe_used_weight(4790, now=125.0)
    assert governor.delay_before(50, now=130.0) == pytest.approx(50.0)
    assert governor.delay_before(50, now=180.0) == 0  # a new minute, a new window


def test_governor_honours_retry_after_of_a_429_or_418() -> None:
    governor = RestWeightGovernor()
    wait = governor.observe_rate_limited(retry_after_s=30, now=1000.0, fallback_s=1.0)
    assert wait == 30 and governor.rate_limited == 1
    assert governor.delay_before(5, now=1010.0) == pytest.approx(20.0)
    assert governor.delay_before(5, now=1031.0) == 0


def test_governor_falls_back_to_backoff_without_retry_after() -> None:
    governor = RestWeightGovernor()
    assert governor.observe_rate_limited(retry_after_s=None, now=0.0, fallback_s=2.5) == 2.5


@pytest.mark.parametrize(("value", "expected"), [("7", 7.0), (None, None), ("soon", None), ("-3", 0.0)])
def test_retry_after_header_parsing(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


@pytest.mark.parametrize(("limit", "weight"), [(100, 5), (500, 25), (1000, 50), (5000, 250)])
def test_depth_request_weight_follows_the_documented_table(limit: int, weight: int) -> None:
    assert depth_request_weight(limit) == weight
