"""What the simulated later services share: their refusals, ids, times and JSON documents.

Each service answers a request message as a dict of its fields (names as in the .proto
files, maps as dicts of bytes) with the response message's fields, or raises CoreRefusal
with the gRPC status a core of the release answers with (its name) and the core's text.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

Request = Mapping[str, Any]
Answer = dict[str, Any]
Unary = Callable[[Request], Awaitable[Answer]]
Streaming = Callable[[Request], AsyncIterator[Answer]]

JOB_V1 = "/mirrorneuron.job.v1.JobService/"
JOB_V2 = "/mirrorneuron.job.v2.JobService/"
OPERATIONS = "/mirrorneuron.operations.v1.OperationsService/"
CLUSTER = "/mirrorneuron.cluster.v1.ClusterService/"


class CoreRefusal(Exception):
    """A core's refusal: `code` is the gRPC status's name (NOT_FOUND, INVALID_ARGUMENT...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def not_found(message: str) -> CoreRefusal:
    return CoreRefusal("NOT_FOUND", message)


def invalid(message: str) -> CoreRefusal:
    return CoreRefusal("INVALID_ARGUMENT", message)


def precondition(message: str) -> CoreRefusal:
    return CoreRefusal("FAILED_PRECONDITION", message)


def internal(message: str) -> CoreRefusal:
    return CoreRefusal("INTERNAL", message)


def quoted(text: str) -> str:
    """A text as the core's handlers send `inspect(reason)` of a string: in double quotes."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def iso_now(clock: Callable[[], float] = time.time) -> str:
    """The core's timestamps: ISO 8601 in UTC with milliseconds (`2026-05-01T12:00:00.123Z`)."""
    moment = datetime.fromtimestamp(clock(), UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def new_id(prefix: str, length: int = 11) -> str:
    """`prefix` and `length` URL-safe characters, as the core makes its record ids."""
    return prefix + secrets.token_urlsafe(length)[:length]


def dumps(document: Any) -> str:
    return orjson.dumps(document).decode()


def versioned(document: Mapping[str, Any], version: int = 1) -> dict[str, Any]:
    """The document with `version` added unless it has one (as the core's handlers do)."""
    answer = dict(document)
    answer.setdefault("version", version)
    return answer


def json_object(text: str, *, what: str, empty: dict[str, Any] | None = None) -> dict[str, Any]:
    """A request's JSON field read as an object: empty text is `empty` (or {}); text that
    is no JSON, or no object, is refused as INVALID_ARGUMENT naming `what`."""
    if not text.strip():
        return dict(empty or {})
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as err:
        raise invalid(f"{what} must be valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise invalid(f"{what} must be a JSON object")
    return value


def lenient_object(text: str) -> dict[str, Any]:
    """A JSON object, or {} for anything else (as the core reads operation options)."""
    try:
        value = orjson.loads(text) if text.strip() else {}
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
