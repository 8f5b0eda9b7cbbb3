"""authn adapters: SQLite store, argon2 hashing, OPA revocation push, JWKS over HTTP."""
