"""One router per resource, gathered under /api/v1."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Header, Path

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

JOB_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,255}$"
JobId = Annotated[str, Path(pattern=JOB_ID_PATTERN, description="The job's id")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Makes a retry safe: the same key and request give the first answer again",
    ),
]
