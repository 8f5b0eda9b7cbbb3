"""The position service: apply fill batches (publish, then commit), rebuild from the log, reconcile."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import structlog

from services.ptrc.domain.book import PositionBook, differences, recompute, snapshot_account
from services.ptrc.domain.model import LoggedFill, PositionChange, ReconcileReport
from services.ptrc.domain.ports import ChangeListener, EventPublisher, FillLog

log = structlog.get_logger("ptrc")


class PositionService:
    def __init__(
        self,
        book: PositionBook,
        fill_log: FillLog,
        publisher: EventPublisher,
        listener: ChangeListener,
        fills_subject: str,
        account_subject: str,
    ) -> None:
        """fills_subject: what the live consumer reads (e.g. "fills.>"); account_subject: one account's fills,
        with "{account}" as placeholder (e.g. "fills.{account}.>")."""
        self.book = book
        self._log = fill_log
        self._publisher = publisher
        self._listener = listener
        self._fills_subject = fills_subject
        self._account_subject = account_subject
        self.ready = False

    async def rebuild(self, acknowledged_sequence: int) -> int:
        """Replay the log up to its current end into the book. Changes of fills after acknowledged_sequence (the
        live consumer's ack floor: their events may not have gone out before a crash) are published again; the
        event ids make that harmless. Returns the sequence the book now covers."""
        end = await self._log.last_sequence()
        logged = await self._log.replay(self._fills_subject, end) if end else []
        changes = self.book.stage(logged)
        await self._publisher.publish([c for c in changes if c.stream_sequence > acknowledged_sequence])
        self.book.commit(changes, end)
        self.ready = True
        log.info("ptrc.rebuilt", fills=len(logged), sequence=end, positions_changed=len(changes))
        return end

    async def handle(self, fills: Sequence[LoggedFill]) -> None:
        """Apply a batch from the live consumer; returns once the events are stored (then it may be acked).

        A position that a fill reaches out of log order is recomputed from the log instead, so that it is the same
        as a replay's whatever order JetStream delivered in."""
        sequence = max((f.sequence for f in fills), default=0)
        late = self.book.late(fills)
        changes = self.book.stage(f for f in fills if (f.fill.account_id, f.fill.symbol) not in late)
        recomputed = await self._recompute(late, max(sequence, self.book.sequence)) if late else []
        await self._publisher.publish([*changes, *(change for change, _ in recomputed)])
        self.book.commit(changes, sequence)
        for change, fill_ids in recomputed:
            p = change.position
            self.book.replace(p, fill_ids, change.stream_sequence)
        self._listener.notify([*changes, *(change for change, _ in recomputed)])

    async def _recompute(
        self, keys: set[tuple[str, str]], up_to_sequence: int
    ) -> list[tuple[PositionChange, frozenset[str]]]:
        out = []
        for account_id in sorted({account for account, _ in keys}):
            logged = await self._log.replay(self._account_subject.format(account=account_id), up_to_sequence)
            fresh = recompute(f for f in logged if f.fill.account_id == account_id)
            for symbol in sorted(symbol for account, symbol in keys if account == account_id):
                live, position = self.book.get(account_id, symbol), fresh.get(account_id, symbol)
                position = replace(position, version=max(live.version, position.version) + 1)
                change = PositionChange(
                    position, "", reconciliation=True, stream_sequence=fresh.sequence_of(account_id, symbol)
                )
                out.append((change, fresh.fill_ids(account_id, symbol)))
                log.info(
                    "ptrc.recomputed_out_of_order",
                    account_id=account_id,
                    symbol=symbol,
                    fills=position.fill_count,
                    version=position.version,
                )
        return out

    async def reconcile(self, account_id: str, symbols: frozenset[str], apply: bool) -> ReconcileReport:
        """Recompute the account's positions from the log up to what the book covers, and compare.

        With apply, a differing symbol is replaced by its recomputation (as a new version) unless a live fill
        changed it meanwhile; `applied` says whether every difference was replaced.
        """
        sequence = self.book.sequence
        stored = snapshot_account(self.book, account_id)
        logged = await self._log.replay(self._account_subject.format(account=account_id), sequence)
        fresh = recompute(f for f in logged if f.fill.account_id == account_id)
        diffs, checked = differences(account_id, stored, fresh, symbols)
        applied = False
        if apply and diffs:
            changes = []
            for diff in diffs:
                live = self.book.get(account_id, diff.symbol)
                if live.version != stored.get(account_id, diff.symbol).version:
                    continue
                position = replace(diff.recomputed, version=max(live.version, diff.recomputed.version) + 1)
                changes.append(PositionChange(position, "", reconciliation=True))
            await self._publisher.publish(changes)
            for change in changes:
                p = change.position
                self.book.replace(p, fresh.fill_ids(p.account_id, p.symbol), fresh.sequence_of(p.account_id, p.symbol))
            self._listener.notify(changes)
            applied = len(changes) == len(diffs)
            log.info("ptrc.reconciled", account_id=account_id, replaced=len(changes), differences=len(diffs))
        return ReconcileReport(tuple(diffs), checked, len(logged), applied, sequence)
