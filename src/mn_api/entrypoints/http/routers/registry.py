"""The core's service registry (ClusterService.ListServices, ResolveService and
CheckServices, 1.2.5 and newer): the services running jobs offer, and whether those a
manifest requires are there."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.responses import Response

from mn_api.entrypoints.http import deps
from mn_api.entrypoints.http.auth import authenticate
from mn_api.entrypoints.http.models import BUNDLE_ID_PATTERN
from mn_api.entrypoints.http.models._base import InterfaceVersion
from mn_api.entrypoints.http.responses import json_response
from mn_api.entrypoints.http.routers import API_PREFIX, RUNTIME_ERRORS, problems, query_json

CLUSTER = "/mirrorneuron.cluster.v1.ClusterService/"
# A service's name, as the core accepts it in a manifest.
SERVICE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
MAX_REQUIRED = 256

router = APIRouter(
    prefix=API_PREFIX,
    tags=["services"],
    dependencies=[Depends(authenticate)],
    responses=problems(*RUNTIME_ERRORS),
)

Text = Annotated[str | None, Query(min_length=1, max_length=256)]
Tags = Annotated[
    list[str],
    Query(
        alias="tag",
        max_length=32,
        description="A tag the instance must carry; repeat for several (all must be there)",
    ),
]
PassingOnly = Annotated[
    bool, Query(description="Only instances whose checks pass (false: warning and critical too)")
]
Name = Annotated[str, Path(pattern=SERVICE_NAME, description="The service's name")]


class ServiceInstance(BaseModel):
    """A registered instance, as the core keeps it: the manifest's declaration (`port`,
    `address`, `meta`, `checks`...) with where it runs and how it is."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(description="`<job_id>:<agent_id>:<name>`, or `<job_id>:job:<name>`")
    name: str
    status: str = Field(description="passing, warning or critical")
    tags: list[str] = []
    node: str | None = None
    job_id: str | None = None
    agent_id: str | None = None
    health: dict[str, Any] = Field(default_factory=dict, description="`status` and `checks`")


class ServiceList(BaseModel):
    model_config = ConfigDict(extra="allow")

    services: list[ServiceInstance]
    version: int = 1


class ServiceCheck(BaseModel):
    """The requirements to check: an uploaded bundle's (its manifest's
    `required_services`), or a list given here. This gateway reads no folder of its host."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        # Exactly one source (null is none).
        json_schema_extra={
            "oneOf": [
                {"required": [name]} for name in ("bundle_id", "_bundle_path", "required_services")
            ]
        },
    )

    bundle_id: str = Field(  # type: ignore[assignment]
        None,
        min_length=1,
        description="An uploaded bundle (the `bundle_id` `/bundles/upload` answered)",
        json_schema_extra={"pattern": BUNDLE_ID_PATTERN},
    )
    bundle_path: str = Field(  # type: ignore[assignment]
        None,
        alias="_bundle_path",
        min_length=1,
        description="Older clients' name for bundle_id",
        json_schema_extra={"pattern": BUNDLE_ID_PATTERN},
    )
    required_services: list[dict[str, Any] | str] = Field(  # type: ignore[assignment]
        None,
        max_length=MAX_REQUIRED,
        description="Requirements as a manifest declares them: a name, or an object with "
        "`name` and optionally `tags`, `required`, `checks`, `address`, `port`, `url`",
    )
    version: InterfaceVersion = 1

    @model_validator(mode="after")
    def _one_source(self) -> "ServiceCheck":
        sources = (self.bundle_id, self.bundle_path, self.required_services)
        if sum(source is not None for source in sources) != 1:
            raise ValueError("give one of bundle_id (or _bundle_path) and required_services")
        return self


class ServiceCheckReport(BaseModel):
    """The core's preflight report (`schema_version` validation.report/v1): `ok`,
    `status` (passed or failed), `error_count`, `errors`, `issues` (each with a `code`
    such as service.required_missing, service.health_failed,
    service.registry_unavailable) and `results` (one per requirement, with its
    `instances` or its `health`)."""

    model_config = ConfigDict(extra="allow")

    version: int = 1
    schema_version: str | None = None
    ok: bool
    status: str
    error_count: int = 0
    errors: list[str] = []
    issues: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []


@router.get(
    "/services",
    response_model=ServiceList,
    responses=problems(400, 422),
    summary="The services running jobs offer",
)
async def list_services(
    core: deps.CoreServices,
    name: Text = None,
    node: Text = None,
    job_id: Text = None,
    agent_id: Text = None,
    status: Annotated[str | None, Query(min_length=1, max_length=32)] = None,
    tag: Tags = [],  # noqa: B006 (FastAPI copies the default)
    passing_only: PassingOnly = True,
) -> Response:
    """ListServices on the core: the instances that pass every filter given, by id
    (canary candidates of a deployment are left out). 501 `not_supported` on cores
    without it (1.1, d26bef71)."""
    query = query_json(
        name=name,
        node=node,
        job_id=job_id,
        agent_id=agent_id,
        status=status,
        tags=tag,
        passing_only=passing_only,
    )
    document = await core.call(CLUSTER + "ListServices", {"query_json": query}, kind="service")
    return json_response(document)


@router.get(
    "/services/{name}/resolve",
    response_model=ServiceList,
    responses=problems(400, 422),
    summary="The instances of one service",
)
async def resolve_service(
    core: deps.CoreServices,
    name: Name,
    node: Text = None,
    job_id: Text = None,
    agent_id: Text = None,
    tag: Tags = [],  # noqa: B006 (FastAPI copies the default)
    passing_only: PassingOnly = True,
) -> Response:
    """ResolveService on the core: the instances of `name` that pass the filters (by
    default only passing ones); none is an empty list, not a 404."""
    query = query_json(
        node=node, job_id=job_id, agent_id=agent_id, tags=tag, passing_only=passing_only
    )
    document = await core.call(
        CLUSTER + "ResolveService", {"name": name, "query_json": query}, kind="service"
    )
    return json_response(document)


CHECK_DOC = (
    "CheckServices on the core, which checks each requirement itself: one with `checks`, "
    "an `address` or a `port` is probed from the core's host (TCP, HTTP), any other must be "
    "registered by a running job, passing and with the tags asked for. Always 200 with the "
    "report when the core answers: a failed check is `ok: false`, not an error. 404 "
    "`bundle_not_found` for a bundle that is gone. An admin token is needed although it "
    "changes nothing: the core reaches out to the addresses the requirements name."
)


async def _check(check: deps.CheckRequiredServices, body: ServiceCheck) -> Response:
    bundle = body.bundle_id or body.bundle_path
    if bundle is not None:
        return json_response(await check(bundle_id=bundle))
    return json_response(await check(required=body.required_services or []))


CheckBody = Annotated[ServiceCheck, Body()]


@router.post(
    "/services:check",
    response_model=ServiceCheckReport,
    responses=problems(400, 404, 422),
    summary="Check the services a manifest requires",
    description=CHECK_DOC,
)
async def check_services(check: deps.CheckRequiredServices, body: CheckBody) -> Response:
    return await _check(check, body)


@router.post(
    "/services/check",
    response_model=ServiceCheckReport,
    responses=problems(400, 404, 422),
    summary="Check the services a manifest requires",
    description="The same as POST /services:check.",
)
async def check_services_alias(check: deps.CheckRequiredServices, body: CheckBody) -> Response:
    return await _check(check, body)
