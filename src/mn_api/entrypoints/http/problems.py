"""Problem details (RFC 9457): the one table from domain errors to HTTP answers."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError as FastAPIValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from mn_api.application.context import request_id
from mn_api.domain import errors as e
from mn_api.entrypoints.http.responses import PROBLEM_JSON, dumps

log = logging.getLogger("mn_api.http")

RETRY_AFTER_SECONDS = "5"


@dataclass(frozen=True, slots=True)
class ProblemKind:
    status: int
    code: str
    title: str


# Most specific first: the first entry whose class matches the error wins.
_TABLE: tuple[tuple[type[e.DomainError], ProblemKind], ...] = (
    (e.JobNotFoundError, ProblemKind(404, "job_not_found", "Job not found")),
    (e.DeadLetterNotFoundError, ProblemKind(404, "dead_letter_not_found", "Dead letter not found")),
    (e.BundleNotFoundError, ProblemKind(404, "bundle_not_found", "Bundle not found")),
    (e.NodeNotFoundError, ProblemKind(404, "node_not_found", "Node not found")),
    (e.BlueprintNotFoundError, ProblemKind(404, "blueprint_not_found", "Blueprint not found")),
    (e.LaunchNotFoundError, ProblemKind(404, "launch_not_found", "Launch not found")),
    (
        e.LaunchPathNotRegularError,
        ProblemKind(400, "launch_path_not_regular", "Not a regular file or folder"),
    ),
    (e.LaunchInProgressError, ProblemKind(409, "launch_in_progress", "Launch in progress")),
    (e.ProgressIdTakenError, ProblemKind(409, "progress_id_taken", "Progress id taken")),
    (
        e.LaunchOutcomeUnknownError,
        ProblemKind(409, "launch_outcome_unknown", "Launch outcome unknown"),
    ),
    (
        e.BlueprintReadsBusyError,
        ProblemKind(503, "blueprints_busy", "Blueprint reading busy"),
    ),
    (
        e.LaunchPathNotAllowedError,
        ProblemKind(403, "path_not_allowed", "Path outside the launch folders"),
    ),
    (e.InvalidTransitionError, ProblemKind(409, "invalid_transition", "Invalid transition")),
    (e.AlreadyExistsError, ProblemKind(409, "conflict", "Conflict")),
    (e.ManifestInvalidError, ProblemKind(422, "manifest_invalid", "Manifest invalid")),
    (
        e.RequirementsNotMetError,
        ProblemKind(412, "requirements_not_met", "The runtime cannot meet the requirements"),
    ),
    (e.InvalidArgumentError, ProblemKind(400, "invalid_argument", "Invalid argument")),
    (e.RequestValidationError, ProblemKind(422, "validation_error", "Validation error")),
    (e.UnsafePayloadPathError, ProblemKind(422, "unsafe_payload_path", "Unsafe payload path")),
    (e.BundleRejectedError, ProblemKind(400, "bundle_rejected", "Bundle rejected")),
    (e.TooLargeForRuntimeError, ProblemKind(413, "request_too_large", "Request too large")),
    (
        e.InsufficientStorageError,
        ProblemKind(507, "insufficient_storage", "Insufficient storage"),
    ),
    (
        e.BundleStoreUnavailableError,
        ProblemKind(503, "bundle_store_unavailable", "Bundle store unavailable"),
    ),
    (e.RuntimeOverloadedError, ProblemKind(503, "resource_overloaded", "Runtime overloaded")),
    (e.RuntimeUnavailableError, ProblemKind(503, "runtime_unavailable", "Runtime unavailable")),
    (e.RuntimeTimeoutError, ProblemKind(504, "runtime_timeout", "Runtime timeout")),
    (e.NotSupportedError, ProblemKind(501, "not_supported", "Not supported by this runtime")),
    (
        e.HistoryWindowError,
        ProblemKind(410, "history_position_gone", "History position no longer held"),
    ),
    (e.RuntimeAuthError, ProblemKind(502, "runtime_auth_failed", "Runtime refused the gateway")),
    (
        e.RuntimeProtocolError,
        ProblemKind(502, "runtime_protocol_error", "Runtime answer unreadable"),
    ),
    (e.RuntimeFailureError, ProblemKind(502, "runtime_error", "Runtime error")),
    (
        e.SharedStateUnavailableError,
        ProblemKind(503, "shared_state_unavailable", "Shared state unavailable"),
    ),
    (
        e.IdempotencyKeyReusedError,
        ProblemKind(422, "idempotency_key_reused", "Idempotency-Key reused"),
    ),
    (
        e.IdempotencyOutcomeUnknownError,
        ProblemKind(409, "idempotency_outcome_unknown", "Outcome unknown"),
    ),
    (
        e.IdempotencyInFlightError,
        ProblemKind(409, "idempotency_key_in_flight", "Request in flight"),
    ),
    (
        e.InvalidIdempotencyKeyError,
        ProblemKind(400, "invalid_idempotency_key", "Invalid Idempotency-Key"),
    ),
    (e.RateLimitedError, ProblemKind(429, "rate_limited", "Too many requests")),
    (
        e.WebhookUrlNotAllowedError,
        ProblemKind(422, "webhook_url_not_allowed", "Webhook URL not allowed"),
    ),
    (
        e.WebhookDeliveryNotFoundError,
        ProblemKind(404, "webhook_delivery_not_found", "Webhook delivery not found"),
    ),
    (
        e.WebhookDeliveryBusyError,
        ProblemKind(409, "webhook_delivery_in_flight", "Webhook delivery in flight"),
    ),
    (
        e.JoinHostNotAllowedError,
        ProblemKind(403, "join_host_not_allowed", "Join host not allowed"),
    ),
    (e.JoinRefusedError, ProblemKind(403, "join_refused", "Join refused")),
    (
        e.RemoteCoreUnavailableError,
        ProblemKind(502, "remote_core_unavailable", "Remote core unavailable"),
    ),
)
_INTERNAL = ProblemKind(500, "internal_error", "Internal server error")


def kind_of(error: e.DomainError) -> ProblemKind:
    if isinstance(error, e.RecordNotFoundError):
        what = error.kind.replace("_", " ")
        return ProblemKind(404, f"{error.kind}_not_found", f"{what.capitalize()} not found")
    for cls, kind in _TABLE:
        if isinstance(error, cls):
            return kind
    return _INTERNAL


def problem_body(
    status: int, code: str, detail: str, *, title: str | None = None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"urn:mn-api:problem:{code}",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "error": code,
        # What went wrong as sentences a client can show, each with its stable code; one
        # item unless the problem lists several (a manifest's, a request's fields).
        "errors": one_error(code, detail),
    }
    rid = request_id.get()
    if rid is not None:
        body["request_id"] = rid
    body.update(extra)
    return body


def problem_response(
    status: int,
    code: str,
    detail: str,
    *,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    body = problem_body(status, code, detail, title=title, **extra)
    return Response(dumps(body), status_code=status, headers=headers, media_type=PROBLEM_JSON)


def domain_problem(error: e.DomainError) -> Response:
    kind = kind_of(error)
    extra: dict[str, Any] = {}
    headers: dict[str, str] = {}
    code = kind.code
    if isinstance(error, e.ManifestInvalidError):
        extra["errors"] = [{"code": code, "message": problem} for problem in error.errors]
        extra["error_count"] = error.total
    elif isinstance(error, e.RequestValidationError):
        extra["errors"] = _validation_fields(error.fields) or one_error(code, error.detail)
    elif isinstance(error, e.BundleRejectedError):
        code = error.code
    elif isinstance(error, e.UnsafePayloadPathError):
        extra["reason"] = error.reason
    elif isinstance(error, e.TooLargeForRuntimeError):
        extra["limit_bytes"] = error.limit_bytes
    elif isinstance(
        error,
        e.RuntimeUnavailableError
        | e.RuntimeOverloadedError
        | e.SharedStateUnavailableError
        | e.BundleStoreUnavailableError
        | e.BlueprintReadsBusyError,
    ):
        headers["Retry-After"] = RETRY_AFTER_SECONDS
    elif isinstance(error, e.RateLimitedError):
        headers["Retry-After"] = str(error.retry_after_seconds)
    if kind.status >= 500:
        log.warning("%s: %s", code, error.detail, exc_info=error.__cause__ is not None)
    detail = error.detail if kind is not _INTERNAL else "the gateway could not complete the request"
    return problem_response(kind.status, code, detail, title=kind.title, headers=headers, **extra)


def one_error(code: str, detail: str) -> list[dict[str, str]]:
    return [{"code": code, "message": detail}]


def _validation_fields(errors: Any) -> list[dict[str, Any]]:
    fields = []
    for err in errors:
        where = ".".join(str(part) for part in err.get("loc", ()))
        message = err.get("msg", "")
        fields.append(
            {
                "code": "validation_error",
                "message": f"{where}: {message}" if where else message,
                "loc": list(err.get("loc", ())),
                "msg": message,
                "type": err.get("type", ""),
            }
        )
    return fields


async def _on_domain_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, e.DomainError)
    return domain_problem(exc)


async def _on_validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FastAPIValidationError)
    fields = _validation_fields(exc.errors())
    names = ", ".join(".".join(str(p) for p in f["loc"]) for f in fields)
    return problem_response(
        422, "validation_error", f"the request is not valid: {names}", errors=fields
    )


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "request_too_large",
    415: "unsupported_media_type",
}


async def _on_http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return http_problem(exc)


def http_problem(exc: HTTPException) -> Response:
    code = getattr(exc, "code", None) or _HTTP_CODES.get(exc.status_code, "http_error")
    extra = getattr(exc, "extra", None) or {}
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    return problem_response(exc.status_code, code, detail, headers=exc.headers, **extra)


async def _on_unexpected(_request: Request, exc: Exception) -> Response:
    log.error("unhandled error", exc_info=exc)
    return problem_response(500, _INTERNAL.code, "the gateway could not complete the request")


class HttpProblem(HTTPException):
    """An HTTP-level refusal with a stable code (auth, body size), raised by the HTTP layer."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(status, detail, dict(headers) if headers else None)
        self.code = code
        self.extra = extra


def install(app: FastAPI) -> None:
    """Register the handlers once; Starlette finds them along each error's class hierarchy."""
    app.add_exception_handler(e.DomainError, _on_domain_error)
    app.add_exception_handler(FastAPIValidationError, _on_validation_error)
    app.add_exception_handler(HTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)
