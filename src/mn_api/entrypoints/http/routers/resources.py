"""The cluster's resource limits (ClusterService.GetResource and SetResource, 1.2.5 and
newer): how much of each node's CPU, GPU, memory and disk the core may schedule onto."""

import json
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

from mn_api.domain.errors import RequestValidationError
from mn_api.entrypoints.http import deps
from mn_api.entrypoints.http.auth import authenticate
from mn_api.entrypoints.http.models._base import InterfaceVersion
from mn_api.entrypoints.http.responses import json_response
from mn_api.entrypoints.http.routers import API_PREFIX, RUNTIME_ERRORS, problems

CLUSTER = "/mirrorneuron.cluster.v1.ClusterService/"

router = APIRouter(
    prefix=API_PREFIX,
    tags=["cluster"],
    dependencies=[Depends(authenticate)],
    responses=problems(*RUNTIME_ERRORS),
)

Share = Literal[25, 50, 75, 100]
KINDS = ("cpu", "gpu", "memory", "disk")


class ResourceLimits(BaseModel):
    """The share (percent) of each kind of hardware jobs may use; kinds left out keep
    their limit. At least one is needed."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"anyOf": [{"required": [kind]} for kind in KINDS]},
    )

    # Absent is "keep": null is no share, and refused as such.
    cpu: Share = None  # type: ignore[assignment]
    gpu: Share = None  # type: ignore[assignment]
    memory: Share = None  # type: ignore[assignment]
    disk: Share = None  # type: ignore[assignment]
    version: InterfaceVersion = 1


class ResourceDocument(BaseModel):
    """The core's document: `mode`, `node_count`, `limits`, `totals`, `combined`, `usable`
    and `nodes` (the shape is the core's; see docs/LATER_SERVICES.md)."""

    model_config = ConfigDict(extra="allow")

    version: int = 1


@router.get(
    "/resource",
    response_model=ResourceDocument,
    summary="The cluster's hardware and the limits on it",
)
async def get_resource(core: deps.CoreServices) -> Response:
    """GetResource on the core; 501 `not_supported` on cores without it (1.1, d26bef71)."""
    return json_response(await core.call(CLUSTER + "GetResource", field="resource_json"))


async def _set(core: deps.CoreServices, limits: ResourceLimits) -> Response:
    wanted = limits.model_dump(exclude_none=True, exclude={"version"})
    if not wanted:
        raise RequestValidationError("at least one of cpu, gpu, memory or disk is required")
    document = await core.call(
        CLUSTER + "SetResource", {"resource_json": json.dumps(wanted)}, field="resource_json"
    )
    return json_response(document)


Limits = Annotated[ResourceLimits, Body()]


@router.post(
    "/resource",
    response_model=ResourceDocument,
    responses=problems(400, 422),
    summary="Set the cluster's resource limits",
)
async def set_resource(core: deps.CoreServices, limits: Limits) -> Response:
    """SetResource on the core: the whole document with the new limits."""
    return await _set(core, limits)


@router.put(
    "/resource",
    response_model=ResourceDocument,
    responses=problems(400, 422),
    summary="Set the cluster's resource limits",
)
async def put_resource(core: deps.CoreServices, limits: Limits) -> Response:
    """The same as POST /resource."""
    return await _set(core, limits)
