"""Closes each UTC trading day at 00:00 UTC (END_OF_DAY snapshots), retrying until they are published."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

from services.pnl.domain.model import NS_PER_DAY, trading_day
from services.pnl.domain.ports import Clock
from services.pnl.domain.service import PnlService

log = structlog.get_logger("pnl.scheduler")


class EndOfDayScheduler:
    def __init__(
        self,
        service: PnlService,
        clock: Clock,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_sleep_s: float = 30.0,
    ) -> None:
        self._service = service
        self._clock = clock
        self._sleep = sleep
        # Sleep in slices, so a wall-clock step (NTP) is noticed within one slice.
        self._max_sleep_s = max_sleep_s
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> str:
        """Wait for the next midnight, then close the day that ended; returns that day."""
        day = trading_day(self._clock.now_ns())
        while trading_day(self._clock.now_ns()) == day:
            remaining_ns = NS_PER_DAY - self._clock.now_ns() % NS_PER_DAY
            await self._sleep(min(self._max_sleep_s, remaining_ns / 1e9))
        backoff = 0.5
        while True:
            try:
                await self._service.end_of_day(day)
                return day
            except Exception as exc:
                log.warning("pnl.end_of_day_failed", day=day, error=repr(exc), backoff_s=backoff)
                await self._sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    async def _run(self) -> None:
        while True:
            await self.run_once()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="pnl:end-of-day")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
