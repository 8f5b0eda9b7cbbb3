"""Reconnect backoff and REST rate-limit bookkeeping. Pure: callers pass the clock and sleep themselves.

Binance REST limits are request weight per IP per minute (``X-MBX-USED-WEIGHT-1M`` reports the weight used in the
current minute; ``GET /api/v3/depth`` with ``limit=1000`` weighs 50 of the default 6000). HTTP 429 means the limit
was hit and 418 that the IP is banned for continuing after 429s; both carry ``Retry-After`` in seconds, and a
client must wait at least that long.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Exponential backoff with jitter and a cap: attempt n waits uniform(base/2, base) with
    base = min(cap, initial * factor**n)."""

    initial_s: float = 0.5
    cap_s: float = 30.0
    factor: float = 2.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        base = min(self.cap_s, self.initial_s * self.factor**self.attempt)
        self.attempt += 1
        return self.rng.uniform(base / 2, base)

    def reset(self) -> None:
        self.attempt = 0


@dataclass
class RestWeightGovernor:
    """Tracks the used REST weight of the current minute and any Retry-After ban; says how long to wait."""

    limit_per_minute: int = 6000
    headroom: float = 0.8  # never spend more than this share of the minute's weight
    used_weight: int = 0
    window_minute: int = -1
    blocked_until: float = 0.0
    rate_limited: int = 0

    def observe_used_weight(self, used_weight: int, now: float) -> None:
        """Record ``X-MBX-USED-WEIGHT-1M`` from a response received at ``now`` (epoch seconds)."""
        self.used_weight = used_weight
        self.window_minute = int(now // 60)

    def observe_rate_limited(self, retry_after_s: float | None, now: float, fallback_s: float) -> float:
        """A 429/418 arrived: block until Retry-After (or ``fallback_s`` without one); returns the wait."""
        self.rate_limited += 1
        wait = retry_after_s if retry_after_s is not None and retry_after_s >= 0 else fallback_s
        self.blocked_until = max(self.blocked_until, now + wait)
        return wait

    def delay_before(self, weight: int, now: float) -> float:
        """Seconds to wait before sending a request of ``weight`` at ``now`` (0 when it may go now)."""
        wait = max(0.0, self.blocked_until - now)
        minute = int(now // 60)
        if minute == self.window_minute and self.used_weight + weight > self.limit_per_minute * self.headroom:
            wait = max(wait, (minute + 1) * 60 - now)
        return wait


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (Binance sends an integer); None when absent or not a number."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
