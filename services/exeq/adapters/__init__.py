"""exeq adapters: gRPC clients (live-gateway, OMS), NATS/JetStream sources and sinks, protobuf codecs."""
