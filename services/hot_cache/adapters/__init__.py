"""hot-cache adapters: protobuf codec, Valkey store, JetStream batch source."""
