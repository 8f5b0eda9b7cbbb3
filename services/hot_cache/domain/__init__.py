"""hot-cache domain: the sequence guard, book building from snapshots and deltas, read rules (no grpc, no I/O)."""
