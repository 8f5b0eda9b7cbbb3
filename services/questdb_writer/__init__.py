"""questdb-writer: fills, order events and PnL snapshots from JetStream -> QuestDB (ILP over HTTP), idempotently."""
