"""The PnL service: apply fills (then publish an intraday snapshot per account), take marks, close the day."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal

import structlog

from services.pnl.domain.ledger import PnlLedger
from services.pnl.domain.model import NS_PER_DAY, FillRecord, Snapshot, SnapshotKind, day_start_ns, mid, trading_day
from services.pnl.domain.ports import Clock, DailyStore, FillLog, PnlListener, SnapshotPublisher

log = structlog.get_logger("pnl")


class PnlService:
    def __init__(
        self,
        ledger: PnlLedger,
        publisher: SnapshotPublisher,
        daily: DailyStore,
        listener: PnlListener,
        clock: Clock,
        fill_log: FillLog,
    ) -> None:
        self.ledger = ledger
        self._log = fill_log
        self._publisher = publisher
        self._daily = daily
        self._listener = listener
        self._clock = clock
        self.ready = False
        self.snapshot_publish_errors = 0

    def replay(self, fills: Iterable[FillRecord]) -> int:
        """Rebuild from the fill log (no snapshots published); then start today for every cell."""
        applied = sum(1 for fill in fills if self.ledger.apply(fill))
        self.ledger.roll_day(trading_day(self._clock.now_ns()))
        self.ready = True
        return applied

    async def handle(self, fills: Sequence[FillRecord]) -> list[Snapshot]:
        """Apply a batch of fills; publish one intraday snapshot per account the batch changed.

        Snapshots are derived records: one that cannot be published is logged and counted, never a reason to
        hold back the fills (which are applied exactly once either way). A cell that a fill reaches out of log
        order is rebuilt from the log instead, so that it is the same as a replay's whatever the delivery order; if
        the log cannot be read, nothing of the batch is applied (it comes back).
        """
        late = self.ledger.late(fills)
        logged: dict[str, list[FillRecord]] = {}
        if late:
            up_to = max([f.sequence for f in fills] + [self.ledger.sequence_of(key) for key in late])
            for account_id in sorted({key[0] for key in late}):
                logged[account_id] = await self._log.fills_of(account_id, up_to)
        for key in sorted(late):
            count = self.ledger.recompute(key, logged[key[0]])
            log.info("pnl.recomputed_out_of_order", account_id=key[0], symbol=key[1], strategy_id=key[2], fills=count)
        last: dict[str, FillRecord] = {}
        for fill in fills:
            if self.ledger.apply(fill) or (fill.account_id, fill.symbol, fill.strategy_id) in late:
                last[fill.account_id] = fill
        snapshots = [
            self.ledger.snapshot(
                account, SnapshotKind.INTRADAY, self.ledger.next_as_of(account, fill.event_time_ns), fill.fill_id
            )
            for account, fill in sorted(last.items())
        ]
        if snapshots:
            try:
                await self._publisher.publish(snapshots)
            except Exception as exc:
                self.snapshot_publish_errors += 1
                log.warning("pnl.snapshot_publish_failed", error=repr(exc), snapshots=len(snapshots))
            self._listener.fills(set(last))
        return snapshots

    def on_quote(self, symbol: str, bid: Decimal | None, ask: Decimal | None, time_ns: int) -> None:
        price = mid(bid, ask)
        if price is None:
            return
        accounts = self.ledger.set_mark(symbol, price, time_ns or self._clock.now_ns())
        if accounts:
            self._listener.marks(accounts)

    async def end_of_day(self, day: str) -> list[Snapshot]:
        """Close `day`: an END_OF_DAY snapshot per account as of the next midnight, published and kept; then the
        next day starts (its day PnL counts from here). Raises if publishing failed (the caller retries)."""
        as_of = day_start_ns(day) + NS_PER_DAY
        snapshots = [
            self.ledger.snapshot(account, SnapshotKind.END_OF_DAY, as_of, day=day)
            for account in sorted(self.ledger.accounts())
        ]
        await self._publisher.publish(snapshots)
        for snapshot in snapshots:
            self._daily.add(snapshot)
        self.ledger.roll_day(trading_day(as_of))
        log.info("pnl.end_of_day", day=day, accounts=len(snapshots))
        return snapshots
