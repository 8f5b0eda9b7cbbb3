"""pnl adapters: protobuf codec, JetStream fill log/consumer, quote marks, PNL publisher, daily store, hub."""
