"""The core's operations (OperationsService, 1.2.31): long work over many jobs or a node
(cancelling or clearing every job, draining or reconciling a node) as a record with
counters, and its numbered events followed live (SSE, resumable by sequence)."""

import json
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Body, Depends, Header, Path, Query
from pydantic import BaseModel, ConfigDict
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.responses import Response

from mn_api.domain.errors import DomainError
from mn_api.entrypoints.http import deps
from mn_api.entrypoints.http.auth import authenticate
from mn_api.entrypoints.http.problems import domain_problem
from mn_api.entrypoints.http.responses import json_response
from mn_api.entrypoints.http.routers import API_PREFIX, RUNTIME_ERRORS, problems
from mn_api.entrypoints.http.routers.events import NO_CACHE, RETRY_MS, counted

OPERATIONS = "/mirrorneuron.operations.v1.OperationsService/"
# How often the core beats on a quiet stream: the first answer (an event or a beat) says
# within that time whether the operation exists, before the response starts.
CORE_HEARTBEAT_MS = 1000
MAX_SEQUENCE = 2**62
_EVENT_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")

router = APIRouter(
    prefix=API_PREFIX,
    tags=["operations"],
    dependencies=[Depends(authenticate)],
    responses=problems(*RUNTIME_ERRORS),
)

Kind = Annotated[
    Literal["cancel_all_jobs", "clear_jobs", "drain_node", "reconcile_node"],
    Path(description="What the operation does (the kinds of the core's 1.2.31)"),
]
OperationId = Annotated[
    str,
    Path(pattern=r"^[A-Za-z0-9_-][A-Za-z0-9._:-]{0,127}$", description="The operation's id"),
]


class Operation(BaseModel):
    """The core's operation document: `operation_id`, `kind`, `status` (pending, running,
    waiting, completed, completed_with_failures, failed), `targets`, `target_count`,
    `counters` (total, started, finished, succeeded, failed, deferred, skipped),
    `created_at`, `updated_at`, `started_at`, `completed_at`, `errors`, the options it was
    started with and, when read back, `items` (by item id). See docs/LATER_SERVICES.md."""

    model_config = ConfigDict(extra="allow")

    version: int = 1


def operation_options(options: dict[str, Any] | None) -> str:
    return json.dumps(options or {})


async def start_operation(core: deps.CoreServices, kind: str, options: dict[str, Any]) -> Any:
    return await core.call(
        OPERATIONS + "StartOperation",
        {"kind": kind, "options_json": operation_options(options)},
        field="operation_json",
        kind="operation",
    )


@router.post(
    "/operations/{kind}",
    response_model=Operation,
    responses=problems(400, 422),
    summary="Start an operation",
)
async def start(
    kind: Kind,
    core: deps.CoreServices,
    options: Annotated[
        dict[str, Any] | None,
        Body(
            description="The operation's options (`node_name`, `reason`, `dry_run`, "
            "`deadline_ms`, `ignore_system_jobs`); none for the job-wide kinds",
            examples=[{"node_name": "mn2@10.0.0.12", "reason": "kernel upgrade"}],
        ),
    ] = None,
) -> Response:
    """StartOperation on the core: the operation as created (`status: pending`); follow it
    with GET /operations/{operation_id}/events. The node kinds need `node_name` (else 400
    `invalid_argument`, as the core says). 501 `not_supported` on cores without operations
    (before 1.2.31)."""
    return json_response(await start_operation(core, kind, options or {}))


@router.get(
    "/operations/{operation_id}",
    response_model=Operation,
    responses=problems(404, 422),
    summary="An operation, with its items",
)
async def get_operation(operation_id: OperationId, core: deps.CoreServices) -> Response:
    """GetOperation on the core; 404 `operation_not_found` for an id it does not know."""
    return json_response(
        await core.call(
            OPERATIONS + "GetOperation",
            {"operation_id": operation_id},
            field="operation_json",
            kind="operation",
        )
    )


_STREAM_DOC = {
    200: {
        "description": "Server-Sent Events: each of the operation's events as `data:`, named "
        "by its `type` (`event:`), with its `sequence` as `id:`; the stream ends once the "
        "operation has ended. Reconnecting with `Last-Event-ID` (or `after_sequence`) "
        "resumes after that sequence. Comment lines keep the connection open; a failure "
        "half way is one `event: error` whose data is a problem.",
        "content": {
            "text/event-stream": {
                "schema": {
                    "type": "object",
                    "description": "One Server-Sent Event",
                    "properties": {
                        "id": {"type": "string", "description": "The event's sequence"},
                        "event": {"type": "string", "description": "The event's type"},
                        "data": {"type": "string", "description": "Event JSON, or a problem"},
                        "retry": {"type": "integer"},
                    },
                }
            }
        },
    },
    204: {"description": "Nothing follows the given sequence, and the operation has ended"},
}


@router.get(
    "/operations/{operation_id}/events",
    response_class=EventSourceResponse,
    responses={**_STREAM_DOC, **problems(404, 422)},
    summary="Follow an operation's events",
)
async def stream_operation_events(
    operation_id: OperationId,
    core: deps.CoreServices,
    settings: deps.Settings,
    telemetry: deps.Telemetry,
    after_sequence: Annotated[
        int,
        Query(
            ge=-MAX_SEQUENCE,
            le=MAX_SEQUENCE,
            description="Only the events after this sequence (below 0 reads as 0)",
        ),
    ] = 0,
    follow: Annotated[bool, Query(description="false: the events so far, then the end")] = True,
    last_event_id: Annotated[
        int | None,
        Header(
            alias="Last-Event-ID",
            ge=0,
            le=MAX_SEQUENCE,
            description="Resume after this sequence (as EventSource sends on reconnecting); "
            "it takes precedence over after_sequence",
        ),
    ] = None,
) -> Response:
    """StreamOperationEvents on the core; 404 `operation_not_found` before any event for
    an id it does not know."""
    after = last_event_id if last_event_id is not None else max(after_sequence, 0)
    stream = core.stream(
        OPERATIONS + "StreamOperationEvents",
        {
            "operation_id": operation_id,
            "after_sequence": after,
            "follow": follow,
            "heartbeat_interval_ms": CORE_HEARTBEAT_MS,
        },
        kind="operation",
    )
    try:
        first = await anext(stream)
    except StopAsyncIteration:
        return Response(status_code=204, headers=NO_CACHE)
    except BaseException:
        await stream.aclose()  # type: ignore[attr-defined]
        raise
    return EventSourceResponse(
        counted(telemetry, _sse(first, stream)),
        headers=NO_CACHE,
        ping=settings.sse_heartbeat_seconds,
        ping_message_factory=lambda: ServerSentEvent(comment="heartbeat"),
    )


async def _sse(first: Any, stream: AsyncIterator[Any]) -> AsyncIterator[ServerSentEvent]:
    yield ServerSentEvent(retry=RETRY_MS)
    try:
        event = first
        while True:
            said = _said(event)
            if said is not None:
                yield said
            event = await anext(stream)
    except StopAsyncIteration:
        return
    except DomainError as error:
        yield ServerSentEvent(event="error", data=bytes(domain_problem(error).body).decode())
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


def _said(event: Any) -> ServerSentEvent | None:
    """An event of the core as one Server-Sent Event; the core's own heartbeats are left
    out (the response's comment lines keep the connection open)."""
    if not isinstance(event, dict) or event.get("type") == "stream_heartbeat":
        return None
    kind = event.get("type")
    sequence = event.get("sequence")
    return ServerSentEvent(
        data=orjson.dumps(event).decode(),
        id=str(sequence) if isinstance(sequence, int) and not isinstance(sequence, bool) else None,
        event=kind if isinstance(kind, str) and _EVENT_NAME.fullmatch(kind) else "progress",
    )
