"""ptrc settings (env prefix TRADE_: TRADE_DURABLE, TRADE_FILLS_SUBJECT, ...)."""

from __future__ import annotations

from pydantic import Field

from mesh.ports import load_ports
from services.runtime.settings import ServiceSettings


class PtrcSettings(ServiceSettings):
    service_name: str = "ptrc"
    port: int = Field(default_factory=lambda: load_ports().service("ptrc"))
    fills_stream: str = "FILLS"
    # What the live consumer (and the start-up replay) reads; tests narrow it to one account.
    fills_subject: str = "fills.>"
    # One account's fills (Reconcile's replay); "{account}" is replaced by the account id.
    account_fills_subject: str = "fills.{account}.>"
    positions_subject_prefix: str = "positions"
    durable: str = "ptrc"
    batch_size: int = 500
    # short: acks lost with a NATS connection come back this soon (handling is idempotent per fill id)
    ack_wait_s: float = 5.0
    # Every StreamPositions call sends a heartbeat after this long without an update.
    heartbeat_interval_s: float = 5.0
    # The log replay fails when no message arrives for this long while some are pending.
    replay_message_timeout_s: float = 5.0
