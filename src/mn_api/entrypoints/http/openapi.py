"""The OpenAPI document: FastAPI's, with problem details under their own media type and
every answer the gateway's own layers give (before any route runs) on each operation."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from mn_api.entrypoints.http.models import DOCUMENT_SCHEMAS
from mn_api.entrypoints.http.responses import PROBLEM_JSON

DESCRIPTION = """
The HTTP gateway of the MirrorNeuron runtime: submit multi-agent workflow jobs (JSON
manifests or zip bundles), follow them live, inspect their agents, events and dead letters,
replay what was lost, and pause, resume, cancel or clear them.

Errors are `application/problem+json` (RFC 9457) with a stable `error` code and the
request's `request_id`. When the gateway runs with tokens, send
`Authorization: Bearer <token>`; read-only tokens may only use GET routes.

Every operation may answer 400 (`invalid_content_length`, `duplicate_authorization`), 413
(`request_too_large`: a body over `MN_API_REQUEST_SIZE_LIMIT_BYTES`) and 500
(`internal_error`).
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

# A route whose query parameters depend on each other describes them as one object, in
# the `form` style with `explode` (each property its own `name=value` on the wire), since
# only an object's schema can say which may not come together: its `openapi_extra` holds
# that parameter under this key, and it replaces the route's separate query parameters.
QUERY_OBJECT = "x-query-object"

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
# What the gateway answers before a route runs, on every operation (GatewayMiddleware).
_EVERY_OPERATION = {
    400: "A Content-Length that is not a number, or two Authorization headers",
    413: "The body is larger than MN_API_REQUEST_SIZE_LIMIT_BYTES (`limit_bytes` says how many)",
    500: "The gateway could not complete the request (`internal_error`)",
}
_READS = frozenset({"get", "head", "options"})


def install_openapi(app: FastAPI, *, auth_enabled: bool, rate_limited: bool = False) -> None:
    """`auth_enabled`: operations that take a token document 401 (and 403 where they
    write); `rate_limited`: they document 429, and 503 when the limiter's store fails."""

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
            _query_objects(spec)
            _parameters_without_null(spec)
            _validation_errors_as_problems(spec)
            _problems_as_problem_json(spec)
            _gateway_answers(spec, auth_enabled=auth_enabled, rate_limited=rate_limited)
            if not auth_enabled:
                _without_security(spec)
            spec.setdefault("components", {}).setdefault("schemas", {}).update(DOCUMENT_SCHEMAS)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _operations(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (method, operation)
        for path in spec.get("paths", {}).values()
        for method, operation in path.items()
    ]


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_JSON: {"schema": _PROBLEM_REF}}}


def _query_objects(spec: dict[str, Any]) -> None:
    for _method, operation in _operations(spec):
        parameter = operation.pop(QUERY_OBJECT, None)
        if parameter is None:
            continue
        names = set(parameter["schema"]["properties"])
        kept = [
            p
            for p in operation.get("parameters", [])
            if not (p.get("in") == "query" and p.get("name") in names)
        ]
        operation["parameters"] = [*kept, parameter]


def _parameters_without_null(spec: dict[str, Any]) -> None:
    """A path, query or header parameter is left out when it has no value: none is `null`
    (FastAPI writes optional ones as `anyOf: [..., {"type": "null"}]`)."""
    for _method, operation in _operations(spec):
        for parameter in operation.get("parameters", []):
            schema = parameter.get("schema", {})
            options = schema.get("anyOf")
            if not options or {"type": "null"} not in options:
                continue
            rest = [option for option in options if option != {"type": "null"}]
            del schema["anyOf"]
            if len(rest) == 1:
                schema.update({**rest[0], **schema})
            else:
                schema["anyOf"] = rest


def _validation_errors_as_problems(spec: dict[str, Any]) -> None:
    """FastAPI documents its 422 as its own JSON body; the gateway answers every invalid
    request with problem details (`validation_error`, one `errors` item per field)."""
    for _method, operation in _operations(spec):
        answer = operation.get("responses", {}).get("422")
        if answer is None:
            continue
        schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
        if schema.get("$ref", "").endswith("/HTTPValidationError"):
            operation["responses"]["422"] = _problem(
                "The request is not valid (`validation_error`, or the route's own code)"
            )
    schemas = spec.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)


def _problems_as_problem_json(spec: dict[str, Any]) -> None:
    """Routes declare problem answers with the Problem model; FastAPI files that schema
    under the route's own media type, so move it to the one the gateway really sends."""
    for _method, operation in _operations(spec):
        for response in operation.get("responses", {}).values():
            content = response.get("content", {})
            if PROBLEM_JSON not in content:
                continue
            for media in [m for m in content if m != PROBLEM_JSON]:
                if content[media].get("schema", {}).get("$ref", "").endswith("/Problem"):
                    content[PROBLEM_JSON] = content.pop(media)


def _gateway_answers(spec: dict[str, Any], *, auth_enabled: bool, rate_limited: bool) -> None:
    for method, operation in _operations(spec):
        responses = operation.setdefault("responses", {})
        answers = dict(_EVERY_OPERATION)
        if "security" in operation:  # admitted by the gatekeeper
            if auth_enabled:
                answers[401] = "No valid bearer token (`unauthorized`)"
                if method not in _READS:
                    answers[403] = "A read-only token on a route that writes (`forbidden`)"
            if rate_limited:
                answers[429] = "Over the rate limit (`rate_limited`, with `Retry-After`)"
                answers[503] = "The rate limiter's shared state does not answer"
        for status, description in answers.items():
            responses.setdefault(str(status), _problem(description))
        operation["responses"] = dict(sorted(responses.items()))


def _without_security(spec: dict[str, Any]) -> None:
    """A gateway running without tokens neither asks for them nor checks them."""
    spec.get("components", {}).pop("securitySchemes", None)
    for _method, operation in _operations(spec):
        operation.pop("security", None)
