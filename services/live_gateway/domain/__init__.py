"""Venue-neutral model and the gateway service; no grpc, no generated code."""
