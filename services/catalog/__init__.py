"""catalog: serves gRPC reflection over the whole API so grpcurl can list and describe it through the edge."""
