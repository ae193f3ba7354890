"""Job definitions and their runs (/api/v2; the core's JobService v2, 1.2.31).

A definition keeps a manifest and its payloads on the core, to be started any number of
times; each start is a run, which the job routes of /api/v1 reach by its run id (its
events, graph, pause and cancel). Cores without the service (1.1, 1.2.5, d26bef71) answer
501 `not_supported`.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Depends, Path, Query
from starlette.responses import Response

from mn_api.application import use_cases as uc
from mn_api.application.use_cases.job_definitions import DEFINITION, RUN
from mn_api.entrypoints.http import deps
from mn_api.entrypoints.http.auth import authenticate
from mn_api.entrypoints.http.json_body import StrictJsonRoute
from mn_api.entrypoints.http.models import definitions as d
from mn_api.entrypoints.http.responses import json_response
from mn_api.entrypoints.http.routers import JOB_ID_PATTERN, RUNTIME_ERRORS, JobId, problems

V2 = "/api/v2"

router = APIRouter(
    prefix=V2,
    tags=["job definitions"],
    dependencies=[Depends(authenticate)],
    responses=problems(*RUNTIME_ERRORS),
    route_class=StrictJsonRoute,
)

# A run is a job of the core: its id follows the job ids' rule.
RunId = Annotated[str, Path(pattern=JOB_ID_PATTERN, description="The run's id")]
NOT_FOUND = problems(404, 422)
# The source a schedule records when the request names none (as mn-api records it).
DEFAULT_SOURCE = {"sdk": "create_job_schedule"}
_ROUTABLE = re.compile(d.IDENTIFIER_PATTERN)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


@router.post(
    "/jobs",
    status_code=201,
    response_model=d.DefinitionSummary,
    responses=problems(400, 409, 413, 422),
    summary="Create a job definition",
)
async def create_job_definition(
    body: Annotated[d.CreateDefinitionRequest, Body()], jobs: deps.JobDefinitions
) -> Response:
    """A manifest (as text or object) and its payloads (text, or base64), kept by the core
    to be started any number of times (POST /api/v2/jobs/{job_id}/runs). The manifest is
    judged by the same rules as a submission's (422 `manifest_invalid`), and the whole must
    fit in one message to the core (413). An id already taken is 409 `conflict`."""
    source = body.source(_dumps)
    assert source is not None  # the model requires a manifest
    created = await jobs.create(
        source,
        job_id=body.job_id,
        configuration=body.resolved_configuration,
        storage=body.storage,
    )
    return json_response(created, status_code=201, headers=_location("jobs", created, "job_id"))


@router.get(
    "/jobs",
    response_model=d.DefinitionList,
    responses=problems(422),
    summary="List job definitions",
)
async def list_job_definitions(
    jobs: deps.JobDefinitions,
    include_archived: Annotated[bool, Query(description="Archived ones too")] = False,
) -> Response:
    """By id."""
    return json_response(
        await jobs.call("ListJobs", {"include_archived": include_archived}, kind=DEFINITION)
    )


@router.get(
    "/jobs/{job_id}",
    response_model=d.DefinitionDetail,
    responses=NOT_FOUND,
    summary="A job definition",
)
async def get_job_definition(job_id: JobId, jobs: deps.JobDefinitions) -> Response:
    """With its configuration, storage and schedules; 404 `job_definition_not_found`."""
    return json_response(await jobs.call("GetJob", {"job_id": job_id}, kind=DEFINITION))


@router.patch(
    "/jobs/{job_id}",
    response_model=d.DefinitionSummary,
    responses={**NOT_FOUND, **problems(400, 409, 413)},
    summary="Change a job definition",
)
async def update_job_definition(
    job_id: JobId,
    body: Annotated[d.UpdateDefinitionRequest, Body()],
    jobs: deps.JobDefinitions,
) -> Response:
    """`attrs` sets `resolved_configuration`, `schedules`, `storage` or `job_name`; a new
    manifest (same graph and blueprint) replaces the bundle while the definition is active
    and none of its runs is live (409 otherwise)."""
    updated = await jobs.update(job_id, attrs=body.attrs, source=body.source(_dumps))
    return json_response(updated)


@router.delete(
    "/jobs/{job_id}",
    response_model=d.DefinitionDeleted,
    responses=NOT_FOUND,
    summary="Delete a job definition",
)
async def delete_job_definition(
    job_id: JobId, body: Annotated[d.ConfirmDeleteRequest, Body()], jobs: deps.JobDefinitions
) -> Response:
    """Needs `{"confirmed": true}` and no live run (409); its schedules go with it, its
    runs stay."""
    request = {"job_id": job_id, "confirmed": body.confirmed}
    return json_response(await jobs.call("DeleteJob", request, kind=DEFINITION))


@router.post(
    "/jobs/{job_id}/archive",
    response_model=d.DefinitionSummary,
    responses=NOT_FOUND,
    summary="Archive a job definition",
)
async def archive_job_definition(job_id: JobId, jobs: deps.JobDefinitions) -> Response:
    """No run of it may be live (409); its schedules are paused. There is no way back."""
    return json_response(await jobs.call("ArchiveJob", {"job_id": job_id}, kind=DEFINITION))


@router.post(
    "/jobs/{job_id}/data:reset",
    response_model=d.DefinitionSummary,
    responses=NOT_FOUND,
    summary="Reset a job definition's data",
)
async def reset_job_definition_data(job_id: JobId, jobs: deps.JobDefinitions) -> Response:
    """Its data seeded afresh, `data_generation` one higher; no run of it may be live."""
    return json_response(await jobs.call("ResetJobData", {"job_id": job_id}, kind=DEFINITION))


@router.post(
    "/jobs/{job_id}/runs",
    status_code=201,
    response_model=d.RunStarted,
    responses={**NOT_FOUND, **problems(400, 409)},
    summary="Start a run of a job definition",
)
async def start_run(
    job_id: JobId,
    jobs: deps.JobDefinitions,
    body: Annotated[d.StartRunRequest | None, Body()] = None,
) -> Response:
    """A new run (`pending`): `inputs` are merged over the manifest's initial inputs and
    the definition's configuration. 409 when the definition is archived, the run id is
    taken, or a run holds its data for writing."""
    body = body or d.StartRunRequest()
    request = {"job_id": job_id, "run_id": body.run_id or "", "inputs_json": _dumps(body.inputs)}
    started = await jobs.call("StartRun", request, kind=DEFINITION)
    return json_response(started, status_code=201, headers=_location("runs", started, "run_id"))


@router.get(
    "/jobs/{job_id}/runs",
    response_model=d.RunList,
    responses=NOT_FOUND,
    summary="A job definition's runs",
)
async def list_runs(job_id: JobId, jobs: deps.JobDefinitions) -> Response:
    """In the order they started (runs since deleted or cleared left out)."""
    return json_response(await jobs.call("ListRuns", {"job_id": job_id}, kind=DEFINITION))


@router.post(
    "/jobs/{job_id}/schedules",
    status_code=201,
    response_model=d.JobSchedule,
    responses={**NOT_FOUND, **problems(400, 409)},
    summary="Schedule runs of a job definition",
)
async def create_job_schedule(
    job_id: JobId,
    jobs: deps.JobDefinitions,
    body: Annotated[d.JobScheduleRequest | None, Body()] = None,
) -> Response:
    """Each dispatch of the schedule starts a run. A schedule the core cannot read is 400
    `invalid_argument` (its reasons in the detail); an archived definition is 409."""
    body = body or d.JobScheduleRequest()
    request = {
        "job_id": job_id,
        "schedule_json": json.dumps(body.schedule),
        "source_json": json.dumps(body.source or DEFAULT_SOURCE),
    }
    created = await jobs.call("CreateJobSchedule", request, kind=DEFINITION)
    return json_response(created, status_code=201)


@router.get("/runs/{run_id}", response_model=d.Run, responses=NOT_FOUND, summary="A run")
async def get_run(run_id: RunId, jobs: deps.JobDefinitions) -> Response:
    """404 `run_not_found` for a run the core does not know."""
    return json_response(await jobs.call("GetRun", {"run_id": run_id}, kind=RUN))


async def _control(jobs: uc.JobDefinitions, run_id: str, action: str) -> Response:
    return json_response(await jobs.control_run(run_id, action))


@router.post(
    "/runs/{run_id}/pause", response_model=d.RunAction, responses=NOT_FOUND, summary="Pause a run"
)
async def pause_run(run_id: RunId, jobs: deps.JobDefinitions) -> Response:
    """409 `invalid_transition` for a run that is not running."""
    return await _control(jobs, run_id, "PauseRun")


@router.post(
    "/runs/{run_id}/resume",
    response_model=d.RunAction,
    responses=NOT_FOUND,
    summary="Resume a run",
)
async def resume_run(run_id: RunId, jobs: deps.JobDefinitions) -> Response:
    """409 `invalid_transition` for a run that is not paused (or running)."""
    return await _control(jobs, run_id, "ResumeRun")


@router.post(
    "/runs/{run_id}/cancel",
    response_model=d.RunAction,
    responses=NOT_FOUND,
    summary="Cancel a run",
)
async def cancel_run(run_id: RunId, jobs: deps.JobDefinitions) -> Response:
    """`cancelled`, or `cancellation_pending` while it winds down; an ended run is
    `cancelled` again."""
    return await _control(jobs, run_id, "CancelRun")


@router.delete(
    "/runs/{run_id}",
    response_model=d.RunDeleted,
    responses=NOT_FOUND,
    summary="Delete a run",
)
async def delete_run(
    run_id: RunId, body: Annotated[d.ConfirmDeleteRequest, Body()], jobs: deps.JobDefinitions
) -> Response:
    """An ended run, with its history (409 while it is live); needs `{"confirmed": true}`."""
    request = {"run_id": run_id, "confirmed": body.confirmed}
    return json_response(await jobs.call("DeleteRun", request, kind=RUN))


def _location(kind: str, document: Any, key: str) -> dict[str, str] | None:
    """Where the created thing is, when the core named it with an id a route accepts."""
    value = document.get(key) if isinstance(document, dict) else None
    if isinstance(value, str) and _ROUTABLE.fullmatch(value):
        return {"Location": f"{V2}/{kind}/{value}"}
    return None
