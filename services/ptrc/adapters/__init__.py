"""ptrc adapters: protobuf codec, JetStream fill log and consumer, POSITIONS publisher, the update hub."""
