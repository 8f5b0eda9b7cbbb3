"""questdb-writer domain: rows, de-duplication by event id, write-until-accepted with counters (no grpc, no I/O)."""
