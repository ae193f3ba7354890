"""Jobs: submit, list, inspect, control and clear."""

import hashlib
import logging
import re
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Body, Depends, Path, Query, Request
from starlette.responses import Response

from mn_api.application import use_cases as uc
from mn_api.application.idempotency import Idempotency
from mn_api.application.use_cases._control import JobControl
from mn_api.entrypoints.http import deps
from mn_api.entrypoints.http import models as m
from mn_api.entrypoints.http.auth import AuthDep, Caller, authenticate
from mn_api.entrypoints.http.idempotent import answer_once
from mn_api.entrypoints.http.json_body import StrictJsonRoute
from mn_api.entrypoints.http.problems import kind_of
from mn_api.entrypoints.http.responses import json_response
from mn_api.entrypoints.http.routers import (
    API_PREFIX,
    JOB_ID_PATTERN,
    RUNTIME_ERRORS,
    IdempotencyKey,
    JobId,
    problems,
)

router = APIRouter(
    prefix=f"{API_PREFIX}/jobs",
    tags=["jobs"],
    dependencies=[Depends(authenticate)],
    responses=problems(*RUNTIME_ERRORS),
    route_class=StrictJsonRoute,
)

log = logging.getLogger("mn_api.http")
# The ids the job routes accept: only those go into a Location header.
_ROUTABLE_JOB_ID = re.compile(JOB_ID_PATTERN)
NOT_FOUND = problems(404, 422)
# What a client (or a fuzzer) can do next with the job a submission created.
JOB_LINKS = {
    name: {"operationId": name, "parameters": {"job_id": "$response.body#/job_id"}}
    for name in (
        "get_job",
        "get_graph",
        "list_events",
        "list_dead_letters",
        "stream_events",
        "pause_job",
        "resume_job",
        "cancel_job",
    )
}
# The listing's bounds (the fast path in front of FastAPI reads them too).
LIST_LIMIT = {"default": 20, "low": 1, "high": 1000}
MAX_STATUS_CHARS = 64
MAX_GRAPH_ID_CHARS = 256
StatusFilter = Annotated[
    str | None,
    Query(
        max_length=MAX_STATUS_CHARS,
        description="Only jobs in this status ("
        + ", ".join(m.JOB_STATUSES)
        + ", or any other a core reports)",
    ),
]


@router.post(
    "",
    status_code=201,
    response_model=m.SubmitJobResponse,
    responses={**problems(400, 404, 409, 412, 413, 422), 201: {"links": JOB_LINKS}},
    summary="Submit a job",
)
async def submit_job(
    request: Request,
    body: Annotated[m.SubmitJobRequest, Body()],
    caller: AuthDep,
    use_case: deps.SubmitJob,
    idempotency: deps.Idempotency,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Run a manifest (as text or object) with its payloads, or an uploaded bundle.

    With an `Idempotency-Key`, sending the same request again returns the first answer
    (marked `Idempotent-Replayed: true`) instead of starting a second job.

    With a `webhook`, the URL is checked before the job is submitted (422
    `webhook_url_not_allowed`), and the chosen events are then delivered to it, signed.
    """
    return await submit(
        body,
        await request.body(),
        caller=caller,
        use_case=use_case,
        idempotency=idempotency,
        idempotency_key=idempotency_key,
    )


async def submit(
    body: m.SubmitJobRequest,
    raw_body: bytes,
    *,
    caller: Caller,
    use_case: uc.SubmitJob,
    idempotency: Idempotency,
    idempotency_key: str | None,
) -> Response:
    """POST /jobs, once its body is valid (shared with the hot path)."""
    manifest_json = body.manifest_json
    if body.manifest is not None:
        manifest_json = orjson.dumps(body.manifest).decode()
    command = uc.SubmitJobCommand(
        manifest_json=manifest_json,
        payloads=body.files,
        bundle_id=body.bundle,
        webhook=body.webhook.request() if body.webhook is not None else None,
    )

    async def work() -> Response:
        ack = await use_case(command)
        headers = None
        if _ROUTABLE_JOB_ID.fullmatch(ack.job_id):
            headers = {"Location": f"{API_PREFIX}/jobs/{ack.job_id}"}
        else:
            # The job started, so the answer still says so; but an id the job routes would
            # not accept (or one that would break the header) is no place to point to.
            log.warning(
                "the runtime answered a job id no route accepts (%d chars)", len(ack.job_id)
            )
        return json_response(
            {"id": ack.job_id, "job_id": ack.job_id, "status": ack.status},
            status_code=201,
            headers=headers,
        )

    async def fingerprint() -> str:
        return hashlib.sha256(raw_body).hexdigest()

    return await answer_once(
        idempotency=idempotency,
        caller=caller,
        route="POST /jobs",
        key=idempotency_key,
        fingerprint=fingerprint,
        work=work,
    )


@router.get("", response_model=m.JobList, responses=problems(422), summary="List jobs")
async def list_jobs(
    use_case: deps.ListJobs,
    limit: Annotated[int, Query(ge=LIST_LIMIT["low"], le=LIST_LIMIT["high"])] = LIST_LIMIT[
        "default"
    ],
    include_terminal: bool = True,
    status: StatusFilter = None,
    graph_id: Annotated[str | None, Query(max_length=MAX_GRAPH_ID_CHARS)] = None,
) -> Response:
    """Newest first."""
    return json_response(
        await use_case(
            limit=limit, include_terminal=include_terminal, status=status, graph_id=graph_id
        )
    )


async def _clear(use_case: uc.ClearJobs) -> Response:
    return json_response({"cleared_count": await use_case()})


@router.delete("", response_model=m.ClearJobsResponse, summary="Clear finished jobs")
async def clear_jobs(
    use_case: deps.ClearJobs,
) -> Response:
    """Removes every job in a terminal status."""
    return await _clear(use_case)


_STOPPED = {
    "time_limit": "the time limit came before every live job was cancelled: "
    "call again for the rest",
    "listing_limit": "the runtime's listing of live jobs named only jobs whose cancel was "
    "refused: more may be live",
}


async def _cancel_all(use_case: uc.CancelAllJobs) -> Response:
    done = await use_case()
    answer: dict[str, object] = {
        "status": done.status,
        "active_count": done.active,
        "cancelled_count": (
            len(done.cancelled) if done.via == "CancelJob" or done.refused else done.active
        ),
        "cancelled_job_ids": done.cancelled,
        # The 1.2.31 core's own name for the ids, for the clients written against it.
        "job_ids": done.cancelled,
        "via": done.via,
    }
    if done.ended:
        answer["ended_job_ids"] = done.ended
    if done.stopped is not None:
        answer["stopped"] = done.stopped
        answer["remaining_count"] = done.remaining
        answer["message"] = _STOPPED[done.stopped]
    if done.refused:
        answer["failed"] = [
            {"job_id": job_id, "error": kind_of(refusal).code, "message": refusal.detail}
            for job_id, refusal in done.refused
        ]
    return json_response(answer)


@router.post(
    "/cancel-all",
    response_model=m.CancelAllJobsResponse,
    summary="Cancel every live job",
)
async def cancel_all_jobs(
    use_case: deps.CancelAllJobs,
) -> Response:
    """Cores from 1.2.31 cancel every live job at once (`via: "CancelAllJobs"`). Older cores
    lack that call: the live jobs are listed and each is cancelled (`via: "CancelJob"`),
    and each one's outcome is told: `cancelled_job_ids`, `ended_job_ids` (ended before
    its cancel came), `failed` (refused, with the reason). One listing names at most
    1,000 jobs: the call lists again until no live job is left that it has not tried. It
    takes 20 s at most; when it stops short, `stopped` says why and `remaining_count` how
    many live jobs it did not get to. `status` sums it up: `no_active_jobs`, `cancelled`,
    `partially_cancelled` or `failed`."""
    return await _cancel_all(use_case)


@router.post(
    "/cleanup",
    response_model=m.ClearJobsResponse,
    deprecated=True,
    summary="Clear finished jobs (older clients)",
)
async def clear_jobs_post(
    use_case: deps.ClearJobs,
) -> Response:
    return await _clear(use_case)


@router.get(
    "/{job_id}", response_model=m.JobDetails, responses=NOT_FOUND, summary="A job's details"
)
async def get_job(
    job_id: JobId,
    use_case: deps.GetJob,
    include: Annotated[
        Literal["full", "summary", "compact"] | None,
        Query(
            description="full (the default): job, summary, agents, recent_events and "
            "sandboxes; summary: job and summary; compact: the job alone"
        ),
    ] = None,
) -> Response:
    """The job's details. Where the core leaves `recent_events` empty (1.2.31), the newest
    25 events of the history are given, newest first, as the other cores send them."""
    return json_response(await use_case(job_id, include or "full"))


@router.get(
    "/{job_id}/graph",
    response_model=m.AgentGraph,
    responses=NOT_FOUND,
    summary="A job's agent graph",
)
async def get_graph(job_id: JobId, use_case: deps.GetJobGraph) -> Response:
    """Agents from the job, its manifest and its events; edges counted from messages."""
    return json_response(await use_case(job_id))


@router.get(
    "/{job_id}/agent-graph",
    response_model=m.AgentGraph,
    responses=NOT_FOUND,
    deprecated=True,
    summary="A job's agent graph (older clients)",
)
async def get_agent_graph(job_id: JobId, use_case: deps.GetJobGraph) -> Response:
    return json_response(await use_case(job_id))


@router.post(
    "/{job_id}/dead-letters/{index}/replay",
    status_code=202,
    response_model=m.ReplayResponse,
    responses=problems(404, 409, 422),
    summary="Deliver a dead letter again",
)
async def replay_dead_letter(
    job_id: JobId,
    index: Annotated[int, Path(ge=0, le=2**31 - 1)],
    use_case: deps.ReplayDeadLetter,
) -> Response:
    result = await use_case(job_id, index)
    return json_response(
        {
            "job_id": result.job_id,
            "index": result.index,
            "event_index": result.event_index,
            "agent_id": result.agent_id,
            "status": "replayed",
        },
        status_code=202,
    )


async def _control(use_case: JobControl, job_id: str) -> Response:
    ack = await use_case(job_id)
    return json_response({"status": ack.status, "job_id": ack.job_id})


CONTROL = problems(404, 409, 422)


@router.post(
    "/{job_id}/cancel",
    response_model=m.JobActionResponse,
    responses=CONTROL,
    summary="Cancel a job",
)
async def cancel_job(job_id: JobId, use_case: deps.CancelJob) -> Response:
    return await _control(use_case, job_id)


@router.post(
    "/{job_id}/pause", response_model=m.JobActionResponse, responses=CONTROL, summary="Pause a job"
)
async def pause_job(job_id: JobId, use_case: deps.PauseJob) -> Response:
    return await _control(use_case, job_id)


@router.post(
    "/{job_id}/resume",
    response_model=m.JobActionResponse,
    responses=CONTROL,
    summary="Resume a paused job",
)
async def resume_job(job_id: JobId, use_case: deps.ResumeJob) -> Response:
    return await _control(use_case, job_id)


# Older clients call POST /jobs:cleanup, which has no "/" between the resource and the verb.
colon_router = APIRouter(
    prefix=API_PREFIX,
    tags=["jobs"],
    dependencies=[Depends(authenticate)],
    responses=problems(*RUNTIME_ERRORS),
)


@colon_router.post(
    "/jobs:cleanup",
    response_model=m.ClearJobsResponse,
    deprecated=True,
    summary="Clear finished jobs (older clients)",
)
async def clear_jobs_colon(
    use_case: deps.ClearJobs,
) -> Response:
    return await _clear(use_case)


@colon_router.post(
    "/jobs:cancel-all",
    response_model=m.CancelAllJobsResponse,
    summary="Cancel every live job (colon form)",
)
async def cancel_all_jobs_colon(
    use_case: deps.CancelAllJobs,
) -> Response:
    return await _cancel_all(use_case)
