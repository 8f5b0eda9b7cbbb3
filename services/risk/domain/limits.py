"""The limits in force: deployment defaults, per-account and per-instrument overrides, and their audit trail."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from services.risk.domain.model import AccountLimits, InstrumentLimits, LimitChange
from services.runtime.errors import DomainError, ErrorKind, FieldViolation, invalid_argument


@dataclass(frozen=True)
class AuditQuery:
    account_id: str = ""
    symbol: str = ""
    start_time_ns: int = 0
    end_time_ns: int = 0
    page_size: int = 100
    page_token: str = ""


class LimitsBook:
    """Holds the limits; changes are applied from LimitChange records (new ones, or replayed from the stream)."""

    def __init__(self, default_account: AccountLimits, instruments: Iterable[InstrumentLimits]) -> None:
        self._default = default_account
        self._accounts: dict[str, AccountLimits] = {}
        self._instruments = {i.symbol: i for i in instruments}
        self._audit: list[LimitChange] = []
        self._audit_ids: set[str] = set()

    def account(self, account_id: str) -> AccountLimits:
        own = self._accounts.get(account_id)
        if own is not None:
            return own
        return dataclasses.replace(self._default, account_id=account_id, is_default=True, version=0)

    def has_own_limits(self, account_id: str) -> bool:
        return account_id in self._accounts

    def instrument(self, symbol: str) -> InstrumentLimits | None:
        return self._instruments.get(symbol)

    def instruments(self, symbols: Iterable[str] = ()) -> list[InstrumentLimits]:
        wanted = set(symbols)
        return [self._instruments[s] for s in sorted(self._instruments) if not wanted or s in wanted]

    def apply(self, change: LimitChange) -> bool:
        """Apply a change (idempotent by audit id)."""
        if change.audit_id in self._audit_ids:
            return False
        self._audit_ids.add(change.audit_id)
        self._audit.append(change)
        if change.new_account is not None:
            self._accounts[change.new_account.account_id] = change.new_account
        if change.new_instrument is not None:
            self._instruments[change.new_instrument.symbol] = change.new_instrument
        return True

    def account_change(
        self,
        limits: AccountLimits,
        actor: str,
        reason: str,
        expected_version: int,
        audit_id: str,
        now_ns: int,
    ) -> LimitChange:
        """The change replacing an account's limits with `limits` (not yet applied)."""
        current = self.account(limits.account_id)
        if expected_version and expected_version != current.version:
            raise DomainError(
                "VERSION_CONFLICT",
                f"limits of {limits.account_id} are at version {current.version}, not {expected_version}",
                ErrorKind.ABORTED,
                metadata={"current_version": str(current.version)},
            )
        new = dataclasses.replace(
            limits, is_default=False, version=current.version + 1, update_time_ns=now_ns, updated_by=actor
        )
        return LimitChange(
            audit_id=audit_id,
            actor=actor,
            change_time_ns=now_ns,
            reason=reason,
            account_id=limits.account_id,
            old_account=None if current.is_default else current,
            new_account=new,
        )

    def instrument_change(
        self, limits: InstrumentLimits, actor: str, reason: str, audit_id: str, now_ns: int
    ) -> LimitChange:
        return LimitChange(
            audit_id=audit_id,
            actor=actor,
            change_time_ns=now_ns,
            reason=reason,
            symbol=limits.symbol,
            old_instrument=self._instruments.get(limits.symbol),
            new_instrument=limits,
        )

    def audit(self, query: AuditQuery) -> tuple[list[LimitChange], str]:
        """Matching changes, newest first, one page; the token is the (time, id) of the last entry returned."""
        after: tuple[int, str] | None = None
        if query.page_token:
            try:
                time_s, audit_id = query.page_token.split(":", 1)
                after = (int(time_s), audit_id)
            except ValueError:
                raise invalid_argument(
                    FieldViolation("page_token", "malformed page token"), reason="INVALID_PAGE_TOKEN"
                ) from None
        size = query.page_size if query.page_size > 0 else 100
        size = min(size, 1000)
        entries = sorted(self._audit, key=lambda c: (c.change_time_ns, c.audit_id), reverse=True)
        page: list[LimitChange] = []
        more = False
        for change in entries:
            key = (change.change_time_ns, change.audit_id)
            if after is not None and key >= after:
                continue
            if query.account_id and change.account_id != query.account_id:
                continue
            if query.symbol and change.symbol != query.symbol:
                continue
            if query.start_time_ns and change.change_time_ns < query.start_time_ns:
                continue
            if query.end_time_ns and change.change_time_ns >= query.end_time_ns:
                continue
            if len(page) == size:
                more = True
                break
            page.append(change)
        token = f"{page[-1].change_time_ns}:{page[-1].audit_id}" if more and page else ""
        return page, token
