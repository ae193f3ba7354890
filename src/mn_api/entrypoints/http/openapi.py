"""The OpenAPI document: FastAPI's, with problem details under their own media type."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from mn_api.entrypoints.http.responses import PROBLEM_JSON

DESCRIPTION = """
The HTTP gateway of the MirrorNeuron runtime: submit multi-agent workflow jobs (JSON
manifests or zip bundles), follow them live, inspect their agents, events and dead letters,
replay what was lost, and pause, resume, cancel or clear them.

Errors are `application/problem+json` (RFC 9457) with a stable `error` code and the
request's `request_id`. When the gateway runs with tokens, send
`Authorization: Bearer <token>`; read-only tokens may only use GET routes.
"""

TAGS = [
    {"name": "jobs", "description": "Submit, list, inspect and control jobs"},
    {"name": "events", "description": "A job's history, dead letters and live stream"},
    {"name": "bundles", "description": "Zip bundles of a manifest and its payloads"},
    {
        "name": "webhooks",
        "description": "Signed callbacks on a job's events: subscriptions, deliveries, retries",
    },
    {"name": "system", "description": "Health, readiness, the runtime's summary, metrics"},
]


def install_openapi(app: FastAPI, *, auth_enabled: bool) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=DESCRIPTION,
                routes=app.routes,
                tags=TAGS,
            )
            _problems_as_problem_json(spec)
            if not auth_enabled:
                _without_security(spec)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _problems_as_problem_json(spec: dict[str, Any]) -> None:
    """Routes declare problem answers with the Problem model; FastAPI files that schema
    under the route's own media type, so move it to the one the gateway really sends."""
    for path in spec.get("paths", {}).values():
        for operation in path.values():
            for response in operation.get("responses", {}).values():
                content = response.get("content", {})
                if PROBLEM_JSON not in content:
                    continue
                for media in [m for m in content if m != PROBLEM_JSON]:
                    if content[media].get("schema", {}).get("$ref", "").endswith("/Problem"):
                        content[PROBLEM_JSON] = content.pop(media)


def _without_security(spec: dict[str, Any]) -> None:
    """A gateway running without tokens neither asks for them nor answers 401/403."""
    spec.get("components", {}).pop("securitySchemes", None)
    for path in spec.get("paths", {}).values():
        for operation in path.values():
            operation.pop("security", None)
            for status in ("401", "403"):
                operation.get("responses", {}).pop(status, None)
