"""The edge: Envoy config rendered from the port table and the API's service descriptors."""
