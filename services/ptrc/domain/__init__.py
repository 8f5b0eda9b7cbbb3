"""ptrc domain: position netting, the idempotent position book, reconciliation (no grpc, no I/O)."""
