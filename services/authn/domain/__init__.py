"""authn domain: users, API keys, sessions, signing keys and the rules around them (no grpc, no I/O)."""
