"""The operator routes of the later releases, answered from what the core reports: live
jobs, nodes, the runtime's status, health and a doctor's findings, and taking a node out
of the cluster (RemoveNode, where the core has it)."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query
from pydantic import BaseModel, Field
from starlette.responses import Response

from mn_api.entrypoints.http import deps
from mn_api.entrypoints.http import models as m
from mn_api.entrypoints.http.auth import authenticate
from mn_api.entrypoints.http.responses import json_response
from mn_api.entrypoints.http.routers import API_PREFIX, RUNTIME_ERRORS, problems

router = APIRouter(
    prefix=API_PREFIX,
    tags=["system"],
    dependencies=[Depends(authenticate)],
    responses=problems(*RUNTIME_ERRORS),
)
Report = deps.RuntimeReport


class NodeRequest(BaseModel):
    node_name: str = Field(min_length=1, max_length=256, examples=["mn2@10.0.0.12"])


@router.get(
    "/jobs/unfinished",
    response_model=m.JobList,
    responses=problems(422),
    summary="Jobs not yet ended",
)
async def unfinished_jobs(
    use_case: deps.ListJobs,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """`{"data": [...]}`: the jobs whose status is not terminal, newest first."""
    return json_response(await use_case(limit=limit, include_terminal=False))


@router.get("/nodes", response_model=m.NodeList, summary="The cluster's nodes")
async def nodes(report: Report) -> Response:
    """`{"nodes": [...]}`, each as `/system/summary` gives it."""
    return json_response({"nodes": await report.nodes()})


@router.get("/runtime/status", response_model=m.RuntimeStatus, summary="The runtime's status")
async def runtime_status(report: Report) -> Response:
    """Nodes, executor capacity and jobs by status, from the core's summary."""
    return json_response(await report.status())


@router.get("/runtime/health", response_model=m.RuntimeHealth, summary="Whether the core answers")
async def runtime_health(report: Report) -> Response:
    """`{"status": "ok", "latency_ms"}`, or the problem that says why the core does not
    answer within the readiness deadline."""
    return json_response(await report.health())


@router.get(
    "/runtime/doctor",
    response_model=m.DoctorReport,
    summary="Checks of the runtime and what the gateway needs",
)
async def runtime_doctor(report: Report) -> Response:
    """Each check (the core, Redis when configured, nodes, executor capacity) with its
    finding; `status` is `degraded` when any failed. Always 200: the findings are the
    answer."""
    return json_response(await report.doctor())


@router.post(
    "/system/cluster/nodes:remove",
    response_model=m.NodeRemoval,
    responses=problems(400, 404, 422),
    summary="Take a node out of the cluster",
)
async def remove_node(report: Report, body: Annotated[NodeRequest, Body()]) -> Response:
    """RemoveNode on the core; 501 `not_supported` where it lacks the call."""
    return json_response(await report.remove_node(body.node_name))


@router.post(
    "/system/cluster/nodes:leave",
    response_model=m.NodeRemoval,
    responses=problems(404),
    summary="Take the gateway's own node out of the cluster",
)
async def leave_cluster(report: Report) -> Response:
    """RemoveNode for the node the core calls itself (`self?`)."""
    answer: dict[str, Any] = await report.leave()
    return json_response(answer)
