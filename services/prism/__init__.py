"""prism: the simulated exchange ("physics engine") — a price-time priority matching engine per instrument plus
synthetic market participants, emitting a venue-native feed (PrismFeedMessage) and executions (PrismExecution).

The matching core lives in ``services.prism.domain`` (plain Python, no grpc, no gen/)."""
