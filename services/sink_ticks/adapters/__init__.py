"""sink-ticks adapters: protobuf decoding, QuestDB (ILP writer, schema), JetStream batch source."""
