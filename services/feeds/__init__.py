"""Feed handlers: venue connections that publish venue-native market data to NATS (md.raw.<venue>.<symbol>)."""
