"""pnl domain: netting per (account, symbol, strategy), marks, aggregates, day PnL, snapshots (no grpc, no I/O)."""
