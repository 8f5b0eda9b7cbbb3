"""Venue adapters (prism gRPC, paper, Binance REST/WS), JetStream publishing and protobuf codec."""
