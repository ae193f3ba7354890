"""Use cases of the gateway and the ports they need; knows nothing of HTTP or gRPC."""
