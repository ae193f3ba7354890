"""A job's workflow progress: one snapshot, or followed live as snapshots (SSE)."""

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Depends
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.responses import Response

from mn_api.application.use_cases.workflow_progress import Snapshot
from mn_api.domain.errors import DomainError
from mn_api.domain.events import Heartbeat, RuntimeState, iso_timestamp
from mn_api.entrypoints.http import deps
from mn_api.entrypoints.http import models as m
from mn_api.entrypoints.http.auth import authenticate
from mn_api.entrypoints.http.problems import domain_problem
from mn_api.entrypoints.http.responses import JSON
from mn_api.entrypoints.http.routers import (
    API_PREFIX,
    RUNTIME_ERRORS,
    JobId,
    problems,
)
from mn_api.entrypoints.http.routers.events import NO_CACHE, RETRY_MS, counted, runtime_state

log = logging.getLogger("mn_api.http")
router = APIRouter(
    prefix=f"{API_PREFIX}/jobs",
    tags=["events"],
    dependencies=[Depends(authenticate)],
    responses=problems(*RUNTIME_ERRORS),
)
# After the last snapshot of an ended job, how long an EventSource waits before it asks
# again (it reconnects whenever a stream ends): there is nothing more to tell.
ENDED_RETRY_MS = 3_600_000

Progress = deps.WorkflowProgress


@router.get(
    "/{job_id}/workflow-progress",
    response_model=m.WorkflowProgressView,
    responses=problems(404, 422),
    summary="A job's workflow progress",
)
async def get_workflow_progress(job_id: JobId, use_case: Progress) -> Response:
    """Every agent of the job as a step, with its status, the messages it took and sent,
    and when; counts by status; the edges between them and the last events. Built from
    the job's whole history, as `/workflow-progress/stream` sends it."""
    return Response((await use_case.snapshot(job_id)).json, media_type=JSON)


@router.get(
    "/{job_id}/workflow-progress/stream",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "`event: snapshot` with the document of `/workflow-progress` now "
            "and after each change, `event: heartbeat` every 5 s while nothing changes, and "
            "a last snapshot once the job has ended (then the stream ends). Snapshots come "
            "at most 4 a second, and less often when they are big and many watch the job: "
            "what the gateway sends the viewers of one job stays under 8 MiB a second "
            "(a 350 KB snapshot watched by 200 comes about every 9 s, watched by 20 about "
            "every second). A viewer who is slower than that gets the newest snapshot when "
            "it can take one. A stream's snapshots never go back: `sequence` and "
            "`elapsed_seconds` never decrease, and "
            "the status never returns to an earlier stage of the job's life",
            "content": {
                "text/event-stream": {
                    "schema": {
                        "type": "object",
                        "description": "One Server-Sent Event",
                        "properties": {
                            "id": {"type": "string", "description": "The snapshot's sequence"},
                            "event": {"type": "string", "enum": ["snapshot", "heartbeat", "error"]},
                            "data": {
                                "type": "string",
                                "description": "Snapshot JSON, heartbeat JSON, or problem JSON",
                            },
                            "retry": {"type": "integer"},
                        },
                    }
                }
            },
        },
        **problems(404, 422),
    },
    summary="Follow a job's workflow progress live",
)
async def stream_workflow_progress(
    job_id: JobId,
    use_case: Progress,
    telemetry: deps.Telemetry,
) -> Response:
    feed = await use_case.follow(job_id)
    return EventSourceResponse(counted(telemetry, _sse(feed)), headers=NO_CACHE, ping=None)


def _frame(snapshot: Snapshot) -> bytes:
    """The snapshot as one Server-Sent Event (its JSON holds no line break)."""
    return b"id: %d\nevent: snapshot\ndata: %s\n\n" % (snapshot.sequence, snapshot.json)


async def _sse(feed: AsyncIterator[Any]) -> AsyncIterator[ServerSentEvent | bytes]:
    yield ServerSentEvent(retry=RETRY_MS)
    last: Snapshot | None = None
    # Every heartbeat says whether the runtime answers the job's follower.
    runtime: dict[str, Any] = {"runtime": "available"}
    try:
        async for item in feed:
            if isinstance(item, Heartbeat):
                if isinstance(item, RuntimeState):
                    runtime = runtime_state(item)
                beat = {"timestamp": iso_timestamp(time.time()), **runtime}
                yield ServerSentEvent(event="heartbeat", data=orjson.dumps(beat).decode())
            else:
                # Framed once, and the same bytes sent to every viewer of the snapshot.
                last = item
                yield item.framed(_frame)
    except DomainError as error:
        log.warning("workflow progress stream failed: %s", error.detail)
        yield ServerSentEvent(event="error", data=bytes(domain_problem(error).body).decode())
        return
    finally:
        await feed.aclose()  # type: ignore[attr-defined]
    if last is not None:
        yield ServerSentEvent(retry=ENDED_RETRY_MS)
