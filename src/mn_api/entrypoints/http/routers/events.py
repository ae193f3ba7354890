"""A job's history: pages of events, dead letters, and the live stream (SSE or NDJSON)."""

import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.responses import Response, StreamingResponse

from mn_api.adapters.telemetry.prometheus import PrometheusTelemetry
from mn_api.application import use_cases as uc
from mn_api.application.journal import JournalPage
from mn_api.domain.errors import DomainError, RequestValidationError, RuntimeUnavailableError
from mn_api.domain.events import EventRecord, Heartbeat, RuntimeState
from mn_api.entrypoints.http import deps
from mn_api.entrypoints.http import models as m
from mn_api.entrypoints.http.auth import authenticate
from mn_api.entrypoints.http.openapi import QUERY_OBJECT
from mn_api.entrypoints.http.problems import domain_problem
from mn_api.entrypoints.http.responses import (
    JSON,
    ResponseAborted,
    dumps,
    json_document_stream,
)
from mn_api.entrypoints.http.routers import (
    API_PREFIX,
    RUNTIME_ERRORS,
    JobId,
    problems,
)

log = logging.getLogger("mn_api.http")
router = APIRouter(
    prefix=f"{API_PREFIX}/jobs",
    tags=["events"],
    dependencies=[Depends(authenticate)],
    responses=problems(*RUNTIME_ERRORS),
)

NDJSON = "application/x-ndjson"
# The bounds of the event page's numbers (the fast path in front of FastAPI reads them too).
EVENT_NUMBERS = {"offset": (0, 2**62), "limit": (1, 100_000), "tail": (1, 10_000)}
MAX_TYPE_CHARS = 128
TailQuery = Annotated[
    int | None,
    Query(
        ge=EVENT_NUMBERS["tail"][0],
        le=EVENT_NUMBERS["tail"][1],
        description="Only the last N events of the history",
    ),
]
RETRY_MS = 3000
NO_CACHE = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _bounded(name: str, description: str) -> dict[str, Any]:
    low, high = EVENT_NUMBERS[name]
    return {"type": "integer", "minimum": low, "maximum": high, "description": description}


# The page's query parameters as one object (each still its own `name=value`), which can
# say that `tail` comes without `limit` and without an `offset` other than 0.
PAGE_QUERY = {
    "name": "page",
    "in": "query",
    "style": "form",
    "explode": True,
    "required": False,
    "description": "`offset`, `limit` and `type`, or `tail` (with `type`): each its own "
    "query parameter",
    "schema": {
        "type": "object",
        "properties": {
            "offset": {
                **_bounded("offset", "The position of the first event (of `type`) to give"),
                "default": 0,
            },
            "limit": _bounded("limit", "At most this many events; all that follow by default"),
            "type": {
                "type": "string",
                "maxLength": MAX_TYPE_CHARS,
                "description": "Only events of this type",
            },
            "tail": _bounded("tail", "Only the last N events of the history"),
        },
        "dependentSchemas": {
            "tail": {"properties": {"offset": {"const": 0}}, "not": {"required": ["limit"]}}
        },
    },
}


@router.get(
    "/{job_id}/events",
    response_model=m.EventPageResponse,
    responses=problems(404, 422),
    summary="A page of a job's events",
    openapi_extra={QUERY_OBJECT: PAGE_QUERY},
)
async def list_events(
    job_id: JobId,
    use_case: deps.ListEvents,
    offset: Annotated[int, Query(ge=EVENT_NUMBERS["offset"][0], le=EVENT_NUMBERS["offset"][1])] = 0,
    limit: Annotated[
        int | None, Query(ge=EVENT_NUMBERS["limit"][0], le=EVENT_NUMBERS["limit"][1])
    ] = None,
    type: Annotated[str | None, Query(max_length=MAX_TYPE_CHARS)] = None,
    tail: TailQuery = None,
) -> Response:
    """Oldest first; `next_offset` is null on the last page. The answer is streamed as the
    runtime sends the history, so any page (or the whole history) costs the same memory.

    `tail=N` gives the last N events instead, with `offset` their first one's position
    (it cannot be combined with `offset` or `limit`)."""
    if tail is not None and (offset or limit is not None):
        raise RequestValidationError(
            "tail cannot be combined with offset or limit",
            [
                {
                    "loc": ["query", "tail"],
                    "msg": "give tail, or offset and limit",
                    "type": "value_error",
                }
            ],
        )
    page = await use_case(job_id, offset=offset, limit=limit, type=type, tail=tail)
    return StreamingResponse(event_page_stream(page), media_type=JSON)


async def event_page_stream(page: uc.EventPage | JournalPage) -> AsyncIterator[bytes]:
    """The page's answer, written as its events come; cut short (never finished as if
    whole) when the runtime fails half way."""

    def tail() -> bytes:
        return b'],"offset":%d,"next_offset":%s}' % (page.offset, dumps(page.next_offset))

    try:
        async for chunk in json_document_stream(b'{"data":[', aiter(page), tail):
            yield chunk
    except DomainError as error:
        log.warning("a page of events was cut short: %s", error.detail)
        raise ResponseAborted from error


@router.get(
    "/{job_id}/dead-letters",
    response_model=m.DeadLetterList,
    responses=problems(404, 422),
    summary="Messages the job's agents could not take",
)
async def list_dead_letters(
    job_id: JobId,
    use_case: deps.ListDeadLetters,
) -> Response:
    letters = await use_case.stream(job_id)
    head = b'{"job_id":%s,"data":[' % dumps(job_id)
    return StreamingResponse(json_document_stream(head, letters, lambda: b"]}"), media_type=JSON)


_STREAM_DOC = {
    200: {
        "description": "Server-Sent Events: `id:` is the event's position in the job's "
        "history and `data:` the event; `event: end` carries the final status; comment "
        "lines keep the connection open. With `Accept: application/x-ndjson`, the same "
        "events as newline-delimited JSON (blank lines keep the connection open; the last "
        'line is `{"event": "end", "status": ...}`).',
        "content": {
            "text/event-stream": {
                "schema": {
                    "type": "object",
                    "description": "One Server-Sent Event",
                    "properties": {
                        "id": {"type": "string", "description": "The event's position"},
                        "event": {"type": "string", "enum": ["message", "end", "error"]},
                        "data": {
                            "type": "string",
                            "description": "Event JSON, final status, or problem JSON",
                        },
                        "retry": {"type": "integer"},
                    },
                }
            },
            NDJSON: {"schema": {"type": "object", "description": "One event per line"}},
        },
    },
    204: {"description": "The job has ended and nothing follows the given position"},
}


@router.get(
    "/{job_id}/events/stream",
    response_class=EventSourceResponse,
    responses={**_STREAM_DOC, **problems(404, 410, 422)},
    summary="Follow a job's events live",
)
async def stream_events(
    request: Request,
    job_id: JobId,
    use_case: deps.StreamEvents,
    settings: deps.Settings,
    telemetry: deps.Telemetry,
    follow: Annotated[bool, Query(description="false: send the history and close")] = True,
    type: Annotated[str | None, Query(max_length=128)] = None,
    tail: TailQuery = None,
    last_event_id: Annotated[
        int | None, Query(ge=-1, description="Resume after this position (for EventSource)")
    ] = None,
    last_event_id_header: Annotated[
        int | None, Header(alias="Last-Event-ID", ge=-1, description="Resume after this position")
    ] = None,
) -> Response:
    """With `tail=N` the stream starts with the last N events of the history; a position
    to resume after (`Last-Event-ID`, as EventSource sends on reconnecting) takes precedence."""
    after = last_event_id_header if last_event_id_header is not None else last_event_id
    feed = await use_case(
        job_id, after=-1 if after is None else after, follow=follow, type=type, tail=tail
    )
    if feed is None:
        return Response(status_code=204, headers=NO_CACHE)
    if NDJSON in request.headers.get("accept", ""):
        return StreamingResponse(
            counted(telemetry, _ndjson(feed)), media_type=NDJSON, headers=NO_CACHE
        )
    return EventSourceResponse(
        counted(telemetry, _sse(feed)),
        headers=NO_CACHE,
        ping=settings.sse_heartbeat_seconds,
        ping_message_factory=lambda: ServerSentEvent(comment="heartbeat"),
    )


async def counted(telemetry: PrometheusTelemetry, chunks: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """Keeps the open-streams gauge true, whether the stream ends or the client leaves."""
    telemetry.stream_opened()
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]
        telemetry.stream_closed()


def _sse_event(record: EventRecord) -> bytes | ServerSentEvent:
    raw = record.document.raw
    if b"\n" in raw or b"\r" in raw:
        return ServerSentEvent(data=raw.decode(), id=str(record.index))
    return b"id: %d\ndata: %s\n\n" % (record.index, raw)


def runtime_state(state: RuntimeState) -> dict[str, Any]:
    """What a stream says when the runtime stops answering its follower, or answers again:
    `{"runtime": "unavailable", "since", "problem"}` or `{"runtime": "available", "since"}`."""
    said: dict[str, Any] = {
        "runtime": "available" if state.available else "unavailable",
        "since": state.since,
    }
    if not state.available:
        error = state.error
        if not isinstance(error, DomainError):
            error = RuntimeUnavailableError("the runtime does not answer")
        said["problem"] = orjson.loads(bytes(domain_problem(error).body))
    return said


async def _sse(feed: AsyncIterator[uc.FeedItem]) -> AsyncIterator[bytes | ServerSentEvent]:
    yield ServerSentEvent(retry=RETRY_MS)
    try:
        async for item in feed:
            if isinstance(item, EventRecord):
                yield _sse_event(item)
            elif isinstance(item, uc.StreamEnd):
                yield ServerSentEvent(event="end", data=item.status)
            elif isinstance(item, RuntimeState):
                # No id: the stream's positions stay the history's.
                yield ServerSentEvent(
                    event="heartbeat", data=orjson.dumps(runtime_state(item)).decode()
                )
            # Runtime heartbeats are not relayed: the response's own pings keep it open.
    except DomainError as error:
        yield ServerSentEvent(event="error", data=_problem_json(error))
    finally:
        await feed.aclose()  # type: ignore[attr-defined]


async def _ndjson(feed: AsyncIterator[uc.FeedItem]) -> AsyncIterator[bytes]:
    try:
        async for item in feed:
            if isinstance(item, EventRecord):
                yield item.document.raw + b"\n"
            elif isinstance(item, RuntimeState):
                yield orjson.dumps({"event": "heartbeat", **runtime_state(item)}) + b"\n"
            elif isinstance(item, Heartbeat):
                yield b"\n"
            else:
                yield orjson.dumps({"event": "end", "status": item.status}) + b"\n"
    except DomainError as error:
        yield b'{"event":"error","problem":%s}\n' % _problem_json(error).encode()
    finally:
        await feed.aclose()  # type: ignore[attr-defined]


def _problem_json(error: DomainError) -> str:
    log.warning("event stream failed: %s", error.detail)
    response = domain_problem(error)
    return bytes(response.body).decode()
