"""The position book: every (account, symbol) position plus the fill ids applied to it.

Idempotent by fill id: a fill already applied (a JetStream redelivery, a re-publish under a new message id, the
replay at start-up overlapping the live consumer) is ignored. Changes are staged first (so a batch can be published
before it is committed) and committed once the events are out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from services.ptrc.domain.model import (
    LoggedFill,
    Position,
    PositionChange,
    PositionDifference,
)

Key = tuple[str, str]

# Reconciliation reports at most this many mismatched fill ids per symbol (the contract's limit).
MAX_MISMATCHED_IDS = 100


class PositionBook:
    def __init__(self) -> None:
        self._positions: dict[Key, Position] = {}
        self._fill_ids: dict[Key, set[str]] = {}
        self._applied: set[str] = set()
        # Per position, the highest FILLS stream sequence of a fill applied to it.
        self._sequences: dict[Key, int] = {}
        # Highest FILLS stream sequence whose fill was handled (applied or found a duplicate).
        self.sequence = 0

    def __contains__(self, fill_id: str) -> bool:
        return fill_id in self._applied

    def stage(self, fills: Iterable[LoggedFill]) -> list[PositionChange]:
        """The changes these fills make, in order, without committing them; duplicates are left out."""
        overlay: dict[Key, Position] = {}
        seen: set[str] = set()
        changes = []
        for logged in fills:
            fill = logged.fill
            if fill.fill_id in self._applied or fill.fill_id in seen:
                continue
            seen.add(fill.fill_id)
            key = (fill.account_id, fill.symbol)
            before = overlay.get(key) or self.get(*key)
            after = before.apply(fill)
            overlay[key] = after
            changes.append(PositionChange(after, fill.fill_id, stream_sequence=logged.sequence))
        return changes

    def late(self, fills: Iterable[LoggedFill]) -> set[Key]:
        """Positions that a new fill among these reaches out of log order: a fill logged before one already applied
        to the same position (a JetStream redelivery of a batch that failed while later ones went through).
        Applying it last would make the position depend on delivery order; the log's order is the one that counts."""
        highest = dict(self._sequences)
        late: set[Key] = set()
        for logged in fills:
            fill = logged.fill
            if fill.fill_id in self._applied:
                continue
            key = (fill.account_id, fill.symbol)
            if logged.sequence < highest.get(key, 0):
                late.add(key)
            highest[key] = max(highest.get(key, 0), logged.sequence)
        return late

    def commit(self, changes: Sequence[PositionChange], sequence: int = 0) -> None:
        for change in changes:
            key = (change.position.account_id, change.position.symbol)
            self._positions[key] = change.position
            if change.fill_id:
                self._fill_ids.setdefault(key, set()).add(change.fill_id)
                self._applied.add(change.fill_id)
            self._sequences[key] = max(self._sequences.get(key, 0), change.stream_sequence)
        self.sequence = max(self.sequence, sequence, *(c.stream_sequence for c in changes))

    def apply(self, fills: Iterable[LoggedFill]) -> list[PositionChange]:
        changes = self.stage(fills)
        self.commit(changes)
        return changes

    def get(self, account_id: str, symbol: str) -> Position:
        return self._positions.get((account_id, symbol)) or Position(account_id, symbol)

    def has(self, account_id: str, symbol: str) -> bool:
        return (account_id, symbol) in self._positions

    def fill_ids(self, account_id: str, symbol: str) -> frozenset[str]:
        return frozenset(self._fill_ids.get((account_id, symbol), ()))

    def positions(self, account_id: str, include_flat: bool = True) -> list[Position]:
        """The account's positions ordered by symbol."""
        found = [p for (acct, _), p in self._positions.items() if acct == account_id]
        return sorted((p for p in found if include_flat or not p.is_flat), key=lambda p: p.symbol)

    def sequence_of(self, account_id: str, symbol: str) -> int:
        """The highest stream sequence of a fill applied to the position (0 when none)."""
        return self._sequences.get((account_id, symbol), 0)

    def replace(self, position: Position, fill_ids: Iterable[str], sequence: int = 0) -> None:
        """Install a recomputed position (reconciliation) together with the fills it consists of and the highest
        stream sequence among them."""
        key = (position.account_id, position.symbol)
        self._sequences[key] = sequence
        old = self._fill_ids.get(key, set())
        self._applied.difference_update(old)
        new = set(fill_ids)
        self._fill_ids[key] = new
        self._applied.update(new)
        self._positions[key] = position


def recompute(fills: Iterable[LoggedFill]) -> PositionBook:
    book = PositionBook()
    book.apply(fills)
    return book


def differences(
    account_id: str,
    stored: PositionBook,
    recomputed: PositionBook,
    symbols: frozenset[str] = frozenset(),
) -> tuple[list[PositionDifference], int]:
    """Symbols of the account whose stored and recomputed positions differ, and how many symbols were checked."""
    names = {p.symbol for p in stored.positions(account_id)} | {p.symbol for p in recomputed.positions(account_id)}
    if symbols:
        names &= symbols
    out = []
    for symbol in sorted(names):
        mine, theirs = stored.get(account_id, symbol), recomputed.get(account_id, symbol)
        mine_ids, their_ids = stored.fill_ids(account_id, symbol), recomputed.fill_ids(account_id, symbol)
        if mine.economics() == theirs.economics() and mine_ids == their_ids:
            continue
        out.append(
            PositionDifference(
                symbol=symbol,
                stored=mine if stored.has(account_id, symbol) else None,
                recomputed=theirs,
                quantity_difference=theirs.quantity - mine.quantity,
                mismatched_fill_ids=tuple(sorted(mine_ids ^ their_ids))[:MAX_MISMATCHED_IDS],
            )
        )
    return out, len(names)


def snapshot_account(book: PositionBook, account_id: str) -> PositionBook:
    """A copy of one account's part of the book (positions are immutable; the id sets are copied)."""
    copy = PositionBook()
    for position in book.positions(account_id):
        copy.replace(
            position,
            book.fill_ids(account_id, position.symbol),
            book.sequence_of(account_id, position.symbol),
        )
    copy.sequence = book.sequence
    return copy
