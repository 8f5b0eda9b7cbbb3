"""Kill switches: one global, one per account; state is the fold of the KillSwitchEvents in stream order."""

from __future__ import annotations

from services.risk.domain.model import KillSwitch, KillSwitchEvent, KillSwitchScope


class KillSwitchBook:
    def __init__(self) -> None:
        self._global = KillSwitch(KillSwitchScope.GLOBAL)
        self._accounts: dict[str, KillSwitch] = {}
        self._seen: set[str] = set()

    def apply(self, event: KillSwitchEvent) -> bool:
        if event.event_id in self._seen:
            return False
        self._seen.add(event.event_id)
        state = KillSwitch(event.scope, event.account_id, event.engaged, event.actor, event.reason, event.event_time_ns)
        if event.scope is KillSwitchScope.GLOBAL:
            self._global = state
        else:
            self._accounts[event.account_id] = state
        return True

    @property
    def global_switch(self) -> KillSwitch:
        return self._global

    def account_switch(self, account_id: str) -> KillSwitch:
        return self._accounts.get(account_id) or KillSwitch(KillSwitchScope.ACCOUNT, account_id)

    def halted(self, account_id: str) -> KillSwitch | None:
        """The engaged switch that halts the account (global first), or None."""
        if self._global.engaged:
            return self._global
        own = self._accounts.get(account_id)
        return own if own is not None and own.engaged else None

    def engaged_accounts(self) -> list[KillSwitch]:
        return [s for _, s in sorted(self._accounts.items()) if s.engaged]
