"""questdb-writer adapters: protobuf decoding, QuestDB (ILP writer, schema), JetStream batch consumers."""
