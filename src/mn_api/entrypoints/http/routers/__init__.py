"""One router per resource, gathered under /api/v1."""

from __future__ import annotations

from typing import Any

from mn_api.entrypoints.http.models import Problem

# Each router carries the whole prefix itself, so a route's template is its full path.
API_PREFIX = "/api/v1"


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem+json answers a route can give."""
    return {
        status: {
            "model": Problem,
            "content": {"application/problem+json": {}},
            "description": "Problem details (RFC 9457)",
        }
        for status in statuses
    }


RUNTIME_ERRORS = (500, 501, 502, 503, 504)
AUTH_ERRORS = (401, 403)
