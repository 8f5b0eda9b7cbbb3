"""sink-ticks domain: tick rows, batching with retries until the store accepts, write counters (no grpc, no I/O)."""
