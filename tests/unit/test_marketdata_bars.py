"""GetBars requests: validation, defaults and page tokens bound to the query."""

from __future__ import annotations

import pytest

from services.marketdata.domain.bars import Interval, bar_query, page_token
from services.runtime.errors import DomainError

NOW = 1_800_000_000_000_000_000


def test_defaults_fill_in_page_size_and_end_time() -> None:
    q = bar_query("BTCUSDT", Interval.ONE_MINUTE, 0, 0, 0, "", NOW)
    assert (q.page_size, q.end_ns, q.start_ns) == (500, NOW, 0)
    assert bar_query("BTCUSDT", Interval.ONE_MINUTE, 0, 0, 99_999, "", NOW).page_size == 5000


def test_bad_symbol_and_missing_interval_are_reported_together() -> None:
    with pytest.raises(DomainError) as err:
        bar_query("btc usdt'; drop", None, 0, 0, 0, "", NOW)
    assert {v.field for v in err.value.violations} == {"symbol", "interval"}


def test_a_page_token_continues_the_same_query_and_pins_now() -> None:
    first = bar_query("BTCUSDT", Interval.FIVE_MINUTES, 0, 0, 10, "", NOW)
    token = page_token(first, 600 * 10**9)
    later = bar_query("BTCUSDT", Interval.FIVE_MINUTES, 0, 0, 10, token, NOW + 10**12)
    assert (later.start_ns, later.end_ns) == (600 * 10**9, NOW)
    with pytest.raises(DomainError):
        bar_query("ETHUSDT", Interval.FIVE_MINUTES, 0, 0, 10, token, NOW)
    with pytest.raises(DomainError):
        bar_query("BTCUSDT", Interval.FIVE_MINUTES, 0, 0, 10, "garbage!", NOW)
