"""Schedules, triggers and trigger events (JobService, 1.2.5 and newer): jobs the core
starts by cron, once at a time, or when an event it is told about matches.

Each answer is the core's JSON as it wrote it. A core without these services (1.1,
d26bef71) answers 501 `not_supported`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query
from starlette.responses import Response

from mn_api.domain.errors import InvalidArgumentError, RecordNotFoundError
from mn_api.entrypoints.http import deps
from mn_api.entrypoints.http.auth import authenticate
from mn_api.entrypoints.http.json_body import StrictJsonRoute
from mn_api.entrypoints.http.models.scheduling import (
    EVENTS_KEPT,
    MAX_REASON_CHARS,
    CreateScheduleRequest,
    DispatchRequest,
    DispatchTally,
    EmitEventRequest,
    EmittedEvent,
    ScheduleActionRequest,
    ScheduleDeleted,
    ScheduleDocument,
    ScheduleList,
    ScheduleUpdateRequest,
    TriggerEventList,
)
from mn_api.entrypoints.http.responses import json_response
from mn_api.entrypoints.http.routers import API_PREFIX, RUNTIME_ERRORS, problems, query_json

JOB_V1 = "/mirrorneuron.job.v1.JobService/"
KIND = "schedule"

router = APIRouter(
    prefix=API_PREFIX,
    dependencies=[Depends(authenticate)],
    responses=problems(*RUNTIME_ERRORS),
    route_class=StrictJsonRoute,
)

ScheduleId = Annotated[
    str,
    Path(pattern=r"^[A-Za-z0-9_.:-]{1,256}$", description="The schedule's id (`sched_...`)"),
]
Reason = Annotated[str, Query(max_length=MAX_REASON_CHARS, description="Why (kept nowhere)")]


async def _call(core: deps.CoreServices, rpc: str, request: dict[str, Any]) -> Response:
    document = await core.call(JOB_V1 + rpc, request, kind=KIND, versioned=False)
    return json_response(document)


async def _on_schedule(
    core: deps.CoreServices, rpc: str, schedule_id: str, reason: str
) -> Response:
    """An RPC that names a schedule and says why."""
    return await _call(core, rpc, {"schedule_id": schedule_id, "reason": reason, "version": 1})


async def _create(
    core: deps.CoreServices, body: CreateScheduleRequest, kind: str | None
) -> Response:
    schedule = dict(body.schedule)
    if kind is not None:
        schedule["kind"] = kind
    request = {
        **body.bundle(),
        "schedule_json": json.dumps(schedule),
        "source_json": json.dumps(body.source or {"api": "create_schedule"}),
        "version": 1,
    }
    try:
        return await _call(core, "CreateSchedule", request)
    except RecordNotFoundError as refused:
        # Nothing is looked up to create a schedule: "not found" in the core's reasons is
        # about the manifest (a node it names), not about this request's record.
        raise InvalidArgumentError(refused.detail) from None


CreateBody = Annotated[CreateScheduleRequest, Body()]
_CREATED: dict[str, Any] = {"response_model": ScheduleDocument, "responses": problems(400, 422)}


@router.post("/schedules", tags=["schedules"], summary="Create a schedule", **_CREATED)
async def create_schedule(core: deps.CoreServices, body: CreateBody) -> Response:
    """CreateSchedule: the record the core keeps (its `schedule_id` names it from then on).
    A schedule the core refuses (an invalid cron expression, a delayed one without a time,
    an event one without `trigger.event_type`...) is 400 `invalid_argument`, the core's
    reasons in `detail`."""
    return await _create(core, body, None)


@router.post(
    "/schedules/periodic",
    tags=["schedules"],
    summary="Create a periodic schedule (cron)",
    **_CREATED,
)
async def create_periodic(core: deps.CoreServices, body: CreateBody) -> Response:
    """As POST /schedules, with `schedule.kind` periodic: `crons` (or `cron`) is needed."""
    return await _create(core, body, "periodic")


@router.post(
    "/schedules/delayed",
    tags=["schedules"],
    summary="Create a one-time delayed schedule",
    **_CREATED,
)
async def create_delayed(core: deps.CoreServices, body: CreateBody) -> Response:
    """As POST /schedules, with `schedule.kind` delayed: `run_at` or `delay_ms` is needed."""
    return await _create(core, body, "delayed")


@router.get(
    "/schedules",
    tags=["schedules"],
    response_model=ScheduleList,
    responses=problems(422),
    summary="List schedules",
)
async def list_schedules(
    core: deps.CoreServices,
    kind: Annotated[str | None, Query(max_length=64, description="periodic, delayed...")] = None,
    status: Annotated[str | None, Query(max_length=64, description="active, paused...")] = None,
    enabled: Annotated[bool | None, Query()] = None,
) -> Response:
    query = query_json(kind=kind, status=status, enabled=enabled)
    return await _call(core, "ListSchedules", {"query_json": query, "version": 1})


@router.get(
    "/schedules/{schedule_id}",
    tags=["schedules"],
    response_model=ScheduleDocument,
    responses=problems(404, 422),
    summary="A schedule",
)
async def get_schedule(core: deps.CoreServices, schedule_id: ScheduleId) -> Response:
    """404 `schedule_not_found` for an id the core does not know."""
    return await _call(core, "GetSchedule", {"schedule_id": schedule_id, "version": 1})


@router.patch(
    "/schedules/{schedule_id}",
    tags=["schedules"],
    response_model=ScheduleDocument,
    responses=problems(404, 422),
    summary="Change a schedule",
)
async def update_schedule(
    core: deps.CoreServices,
    schedule_id: ScheduleId,
    body: Annotated[ScheduleUpdateRequest, Body()],
) -> Response:
    """UpdateSchedule: `attrs` over the record, normalised again (the next run is
    computed anew); its dispatches, counters and manifest stay."""
    request = {
        "schedule_id": schedule_id,
        "attrs_json": json.dumps(body.attrs),
        "reason": body.reason,
        "version": 1,
    }
    return await _call(core, "UpdateSchedule", request)


ActionBody = Annotated[ScheduleActionRequest | None, Body()]


@router.post(
    "/schedules/{schedule_id}/pause",
    tags=["schedules"],
    response_model=ScheduleDocument,
    responses=problems(404, 422),
    summary="Pause a schedule",
)
async def pause_schedule(
    core: deps.CoreServices, schedule_id: ScheduleId, body: ActionBody = None
) -> Response:
    """Nothing is dispatched by time or event until it is resumed (a dispatch by hand
    still is); the reason is kept as `last_status_reason`."""
    return await _on_schedule(core, "PauseSchedule", schedule_id, body.reason if body else "")


@router.post(
    "/schedules/{schedule_id}/resume",
    tags=["schedules"],
    response_model=ScheduleDocument,
    responses=problems(404, 422),
    summary="Resume a schedule",
)
async def resume_schedule(
    core: deps.CoreServices, schedule_id: ScheduleId, body: ActionBody = None
) -> Response:
    """Active again; the next run is computed from now (occurrences while paused are not
    made up)."""
    return await _on_schedule(core, "ResumeSchedule", schedule_id, body.reason if body else "")


@router.delete(
    "/schedules/{schedule_id}",
    tags=["schedules"],
    response_model=ScheduleDeleted,
    responses=problems(422),
    summary="Delete a schedule",
)
async def delete_schedule(
    core: deps.CoreServices, schedule_id: ScheduleId, reason: Reason = ""
) -> Response:
    """The core answers `deleted` for any id, known or not; jobs it started go on."""
    return await _on_schedule(core, "DeleteSchedule", schedule_id, reason)


@router.post(
    "/schedules/{schedule_id}/dispatch",
    tags=["schedules"],
    response_model=DispatchTally,
    responses=problems(404, 422),
    summary="Run a schedule now",
)
async def dispatch_schedule(
    core: deps.CoreServices,
    schedule_id: ScheduleId,
    body: Annotated[DispatchRequest | None, Body()] = None,
) -> Response:
    """One job now, paused schedule or not: the tally says whether it started
    (`dispatched`) or not (`failed`; the record's newest dispatch says why). A one-time
    schedule is then completed."""
    body = body or DispatchRequest.model_validate({})
    request = {
        "schedule_id": schedule_id,
        "payload_json": json.dumps(body.payload),
        "reason": body.reason,
        "version": 1,
    }
    return await _call(core, "DispatchSchedule", request)


@router.post(
    "/triggers",
    tags=["triggers"],
    summary="Create an event trigger",
    **_CREATED,
)
async def create_trigger(core: deps.CoreServices, body: CreateBody) -> Response:
    """As POST /schedules, with `schedule.kind` event: `trigger.event_type` (letters,
    digits, `_.:-`) and optional `trigger.filters` (payload paths with dots, each a value,
    a list of values, `{"prefix": ...}` or `{"contains": ...}`)."""
    return await _create(core, body, "event")


@router.get(
    "/triggers",
    tags=["triggers"],
    response_model=ScheduleList,
    summary="List event triggers",
)
async def list_triggers(core: deps.CoreServices) -> Response:
    request = {"query_json": query_json(kind="event"), "version": 1}
    return await _call(core, "ListSchedules", request)


@router.delete(
    "/triggers/{schedule_id}",
    tags=["triggers"],
    response_model=ScheduleDeleted,
    responses=problems(422),
    summary="Delete an event trigger",
)
async def delete_trigger(
    core: deps.CoreServices, schedule_id: ScheduleId, reason: Reason = ""
) -> Response:
    """The same as DELETE /schedules/{schedule_id} (any kind of schedule goes)."""
    return await _on_schedule(core, "DeleteSchedule", schedule_id, reason)


@router.post(
    "/events",
    tags=["triggers"],
    response_model=EmittedEvent,
    responses=problems(422),
    summary="Emit a trigger event",
)
async def emit_event(
    core: deps.CoreServices, body: Annotated[EmitEventRequest, Body()]
) -> Response:
    """The core records the event and starts every active event trigger of its type whose
    filters hold (a trigger whose earlier job still runs counts as `blocked` instead, unless
    it allows overlap). Not a job's events: those are /jobs/{job_id}/events."""
    request = {
        "event_type": body.event_type,
        "payload_json": json.dumps(body.payload),
        "source": body.source,
        "version": 1,
    }
    return await _call(core, "EmitTriggerEvent", request)


@router.get(
    "/events",
    tags=["triggers"],
    response_model=TriggerEventList,
    responses=problems(422),
    summary="Recent trigger events",
)
async def list_trigger_events(
    core: deps.CoreServices,
    limit: Annotated[int, Query(ge=1, le=EVENTS_KEPT, description="At most this many")] = 100,
) -> Response:
    """The newest first; the core keeps the last 1000."""
    return await _call(core, "ListTriggerEvents", {"limit": limit, "version": 1})
