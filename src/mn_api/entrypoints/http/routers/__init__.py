"""One router per resource, gathered under /api/v1."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Header, Path

from mn_api.application.idempotency import MAX_KEY_LENGTH
from mn_api.entrypoints.http.models import Problem

# Each router carries the whole prefix itself, so a route's template is its full path.
API_PREFIX = "/api/v1"


def query_json(**given: Any) -> str:
    """A core's `query_json`: the filters given (None for one not given) as a JSON object."""
    return json.dumps({name: value for name, value in given.items() if value is not None})


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


# What a route that calls the runtime may answer from it: 409 for a transition or a
# duplicate the core refuses, 501 for a call it lacks, 502 to 504 when it fails (400, for
# an argument it refuses, is documented on every operation).
RUNTIME_ERRORS = (409, 500, 501, 502, 503, 504)
# 401, 403 and 429 come from the gateway's gatekeeper, before any route runs: the OpenAPI
# document gives them to every operation that takes a token (openapi.py), by method and
# by the gateway's configuration, so routers declare none.

JOB_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,255}$"
JobId = Annotated[str, Path(pattern=JOB_ID_PATTERN, description="The job's id")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Makes a retry safe: the same key and request give the first answer "
        f"again. 1 to {MAX_KEY_LENGTH} printable ASCII characters (else 400 "
        "`invalid_idempotency_key`); the same key with another request is 422 "
        "`idempotency_key_reused`",
        # Checked by the idempotency service, which answers with its own code.
        json_schema_extra={"minLength": 1, "maxLength": MAX_KEY_LENGTH, "pattern": "^[ -~]+$"},
    ),
]
