"""Per-request context that travels with a use case down to the adapters."""

from __future__ import annotations

from contextvars import ContextVar

# Set by the HTTP layer for each request; adapters forward it (e.g. as gRPC metadata).
request_id: ContextVar[str | None] = ContextVar("mn_request_id", default=None)
