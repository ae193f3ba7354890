"""Deployments (JobService, 1.2.5 and newer): a job the core keeps running under a key,
with numbered versions, rolled out blue/green, agent by agent or as a canary, promoted and
rolled back.

Each answer is the core's JSON, with `version` 1 added where it has no `version` of its own
(a deploy's answer has one: the version record). A core without these services (1.1,
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
from mn_api.entrypoints.http.models.deployments import (
    DeploymentActionRequest,
    DeploymentChange,
    DeploymentDetails,
    DeploymentDocument,
    DeploymentList,
    DeployRequest,
    RollbackRequest,
)
from mn_api.entrypoints.http.models.scheduling import MAX_NAME_CHARS
from mn_api.entrypoints.http.responses import json_response
from mn_api.entrypoints.http.routers import API_PREFIX, RUNTIME_ERRORS, problems, query_json

JOB_V1 = "/mirrorneuron.job.v1.JobService/"
KIND = "deployment"

router = APIRouter(
    prefix=f"{API_PREFIX}/deployments",
    tags=["deployments"],
    dependencies=[Depends(authenticate)],
    responses=problems(*RUNTIME_ERRORS),
    route_class=StrictJsonRoute,
)

IdOrKey = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_NAME_CHARS,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="A deployment id (`dep_...`) or a deployment key (its current deployment)",
    ),
]
ActionBody = Annotated[DeploymentActionRequest | None, Body()]


async def _call(core: deps.CoreServices, rpc: str, request: dict[str, Any]) -> Response:
    return json_response(await core.call(JOB_V1 + rpc, request, kind=KIND))


@router.post(
    "",
    response_model=DeploymentChange,
    responses=problems(400, 422),
    summary="Deploy a manifest under a key",
)
async def deploy(core: deps.CoreServices, body: Annotated[DeployRequest, Body()]) -> Response:
    """DeployJob. A new key: the job is started and the answer comes once it runs
    (`successful`, version "1"). A known key: the manifest becomes its next version, by the
    path the running job calls for (a batch job runs again: `version_recorded`; a changed
    topology goes blue/green; changed agents roll out, a canary waiting in
    `awaiting_promotion` unless `auto_promote`; no change at all is recorded as such)."""
    request = {
        **body.bundle(),
        "deployment_key": body.key,
        "update_policy_json": json.dumps(body.policy.core_policy()),
        "wait": body.wait,
        "version": 1,
    }
    try:
        return await _call(core, "DeployJob", request)
    except RecordNotFoundError as refused:
        # A deploy looks no record up by this request's name: "not found" in the core's
        # reasons is about the manifest (a node it names) or a job the key ran before.
        raise InvalidArgumentError(refused.detail) from None


@router.get("", response_model=DeploymentList, responses=problems(422), summary="List deployments")
async def list_deployments(
    core: deps.CoreServices,
    key: Annotated[str | None, Query(max_length=MAX_NAME_CHARS)] = None,
    status: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """Every deployment record the core keeps, by id (each change of a key has its own);
    only those of `key`, or in `status`, when given."""
    query = query_json(deployment_key=key, status=status)
    return await _call(core, "ListDeployments", {"query_json": query, "version": 1})


@router.get(
    "/{id_or_key}",
    response_model=DeploymentDetails,
    responses=problems(404, 422),
    summary="A deployment and its versions",
)
async def get_deployment(core: deps.CoreServices, id_or_key: IdOrKey) -> Response:
    """404 `deployment_not_found` for an id or key the core does not know."""
    return await _call(core, "GetDeployment", {"id_or_key": id_or_key, "version": 1})


@router.post(
    "/{id_or_key}/promote",
    response_model=DeploymentChange,
    responses=problems(404, 422),
    summary="Promote a canary",
)
async def promote_deployment(core: deps.CoreServices, id_or_key: IdOrKey) -> Response:
    """Finishes a rollout waiting in `awaiting_promotion` (a blue/green candidate replaces
    the old job, which is cancelled); 409 `invalid_transition` in any other status."""
    return await _call(core, "PromoteDeployment", {"id_or_key": id_or_key, "version": 1})


@router.post(
    "/{id_or_key}/rollback",
    response_model=DeploymentChange,
    responses=problems(400, 404, 422),
    summary="Roll back to an earlier version",
)
async def rollback_deployment(
    core: deps.CoreServices,
    id_or_key: IdOrKey,
    body: Annotated[RollbackRequest | None, Body()] = None,
) -> Response:
    """That version's manifest is deployed again, as the key's next version; 400
    `invalid_argument` when no version fits."""
    body = body or RollbackRequest.model_validate({})
    # This request has no interface version: its `version` is the version to go back to.
    request = {
        "id_or_key": id_or_key,
        "version": body.version or "",
        "tag": body.tag,
        "reason": body.reason,
    }
    return await _call(core, "RollbackDeployment", request)


async def _action(
    core: deps.CoreServices, rpc: str, id_or_key: str, body: DeploymentActionRequest | None
) -> Response:
    request = {"id_or_key": id_or_key, "reason": body.reason if body else "", "version": 1}
    return await _call(core, rpc, request)


_ACTION: dict[str, Any] = {"response_model": DeploymentDocument, "responses": problems(404, 422)}


@router.post("/{id_or_key}/pause", summary="Mark a deployment paused", **_ACTION)
async def pause_deployment(
    core: deps.CoreServices, id_or_key: IdOrKey, body: ActionBody = None
) -> Response:
    """Sets the status (whatever it was) and records the reason as its description; the
    job itself is not touched."""
    return await _action(core, "PauseDeployment", id_or_key, body)


@router.post("/{id_or_key}/resume", summary="Mark a deployment running", **_ACTION)
async def resume_deployment(
    core: deps.CoreServices, id_or_key: IdOrKey, body: ActionBody = None
) -> Response:
    return await _action(core, "ResumeDeployment", id_or_key, body)


@router.post("/{id_or_key}/fail", summary="Mark a deployment failed", **_ACTION)
async def fail_deployment(
    core: deps.CoreServices, id_or_key: IdOrKey, body: ActionBody = None
) -> Response:
    return await _action(core, "FailDeployment", id_or_key, body)
