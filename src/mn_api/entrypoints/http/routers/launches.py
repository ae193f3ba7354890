"""Blueprints and launching them (as the newest Web UI does), and the catalogue-side
routes of the later releases this gateway answers plainly: models and run pages."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from mn_api.application import use_cases as uc
from mn_api.application.use_cases.launch_blueprint import blueprint_view
from mn_api.entrypoints.http import deps
from mn_api.entrypoints.http import models as m
from mn_api.entrypoints.http.auth import AuthDep, Caller, authenticate
from mn_api.entrypoints.http.problems import HttpProblem
from mn_api.entrypoints.http.responses import json_response
from mn_api.entrypoints.http.routers import API_PREFIX, RUNTIME_ERRORS, problems

router = APIRouter(
    prefix=API_PREFIX,
    tags=["blueprints"],
    dependencies=[Depends(authenticate)],
)


class LaunchRunRequest(BaseModel):
    """What to launch: a catalogue blueprint, a folder (or .zip) under the launch roots,
    or a bundle uploaded through `/bundles/upload`."""

    model_config = ConfigDict(
        extra="ignore",
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {"version": 1, "source": "catalog", "blueprint_id": "demo/relay"},
                {"version": 1, "source": "bundle", "_bundle_path": "bnd_" + "0" * 32},
            ],
            # Each source names what it launches (422 `validation_error` without it).
            "oneOf": m.LAUNCH_SOURCES,
        },
    )  # fmt: skip

    version: int = 1
    source: Literal["catalog", "path", "bundle"]
    blueprint_id: str | None = Field(
        None,
        max_length=512,
        description="A blueprint of the catalogue, as `GET /blueprints` lists it: its folder, "
        "or its category and folder (404 `blueprint_not_found` for any other)",
        json_schema_extra={"pattern": m.BLUEPRINT_ID_PATTERN},
    )
    path: str | None = Field(
        None,
        max_length=4096,
        description="The absolute path, on the gateway's host, of a blueprint folder, its "
        "manifest.json or a .zip bundle under MN_API_BLUEPRINT_DIR or MN_API_LAUNCH_ROOTS "
        "(403 `path_not_allowed` elsewhere)",
        json_schema_extra={"pattern": m.LAUNCH_PATH_PATTERN},
    )
    bundle_path: str | None = Field(
        None,
        alias="_bundle_path",
        max_length=256,
        description="The `bundle_path` (the bundle id) `/bundles/upload` answered",
        json_schema_extra={"pattern": m.BUNDLE_ID_PATTERN},
    )
    bundle_id: str | None = Field(
        None,
        max_length=256,
        description="The same bundle id, by its other name",
        json_schema_extra={"pattern": m.BUNDLE_ID_PATTERN},
    )
    progress_id: str | None = Field(
        None,
        max_length=128,
        description="The id to follow the launch by (one is made up when left out or empty); "
        "the same id again after its job started answers that launch",
        json_schema_extra={"pattern": m.PROGRESS_ID_PATTERN},
    )
    config_overrides: dict[str, Any] | None = Field(
        None,
        description="Not supported: anything but an empty object is refused",
        json_schema_extra={"anyOf": [{"type": "object", "maxProperties": 0}, {"type": "null"}]},
    )


class BlueprintView(BaseModel):
    id: str
    name: str
    description: str
    category: str = m.optional()


class BlueprintList(BaseModel):
    blueprints: list[BlueprintView]
    categories: list[dict[str, Any]]


class LaunchPhase(BaseModel):
    id: str
    label: str
    status: str = Field(description="pending, running, completed, skipped or failed")
    message: str


class LaunchView(m.Open):
    version: int
    progress_id: str
    source: str
    status: str = Field(description="running, completed or failed")
    completed: bool
    phases: list[LaunchPhase]
    events: list[dict[str, Any]]
    job_id: str = m.optional("The job started, once submitted")
    id: str = m.optional("The same job id")
    progress_url: str = m.optional()
    error: str = m.optional("Why the launch failed")


@router.get("/blueprints", response_model=BlueprintList, summary="The blueprint catalogue")
async def list_blueprints(
    blueprints: deps.Blueprints,
) -> Response:
    """The blueprints of the catalogue folder (`MN_API_BLUEPRINT_DIR`); none without it."""
    found = await blueprints.catalog()
    categories: dict[str, int] = {}
    for blueprint in found:
        if blueprint.category:
            categories[blueprint.category] = categories.get(blueprint.category, 0) + 1
    return json_response(
        {
            "blueprints": [blueprint_view(b) for b in found],
            "categories": [
                {"id": name, "name": name, "count": count} for name, count in categories.items()
            ],
        }
    )


@router.post(
    "/blueprints/launch/runs",
    status_code=201,
    response_model=LaunchView,
    responses=problems(400, 403, 404, 409, 412, 413, 422, 507, *RUNTIME_ERRORS),
    summary="Launch a job from a blueprint",
)
async def launch_blueprint(
    body: Annotated[LaunchRunRequest, Body()],
    use_case: deps.LaunchBlueprint,
    request: Request,
    caller: AuthDep,
) -> Response:
    """Reads the blueprint, submits its job and answers with the job id and the launch's
    steps; `GET /blueprints/launch/progress/{progress_id}` tells the same afterwards. A
    launch that fails answers its problem, and its progress says `failed` with the reason.
    Nothing is fetched from the network: paths are read on this host, under the launch
    roots only, never through a link.

    A `progress_id` belongs to the token that first used it: the same id again answers
    that launch once it has started its job (409 `launch_in_progress` while it runs), and
    another token's launch under it is 409 `progress_id_taken`."""
    launch = await use_case(
        uc.LaunchRequest(
            source=body.source,
            blueprint_id=body.blueprint_id,
            path=body.path,
            bundle_id=body.bundle_path or body.bundle_id,
            progress_id=body.progress_id,
            config_overrides=body.config_overrides,
            owner=_owner(request, caller),
        )
    )
    headers = {"Location": f"{API_PREFIX}/jobs/{launch.job_id}"} if launch.job_id else None
    return json_response(_launch_view(launch), status_code=201, headers=headers)


@router.get(
    "/blueprints/launch/progress/{progress_id}",
    response_model=LaunchView,
    responses=problems(404, 422),
    summary="How a launch went",
)
async def launch_progress(
    progress_id: Annotated[str, Path(max_length=128)],
    log: deps.LaunchLog,
    request: Request,
    caller: AuthDep,
) -> Response:
    """Each step of the launch and, once submitted, its `job_id`; launches are kept for an
    hour by the gateway process that ran them, and shown only to the token that made
    them (404 to any other)."""
    return json_response(_launch_view(log.get(progress_id, _owner(request, caller))))


@router.get("/models", response_model=m.ModelList, summary="Runtime models")
async def list_models() -> Response:
    """The models the runtime serves: this gateway and the cores it knows report none."""
    return json_response({"models": [], "runner_available": False, "warnings": []})


@router.get(
    "/runs/{run_id}/ui",
    status_code=404,
    response_model=m.Problem,
    responses=problems(404, 422),
    summary="A blueprint run's page",
)
async def run_ui(run_id: Annotated[str, Path(max_length=256)]) -> Response:
    raise HttpProblem(
        404,
        "run_not_found",
        "this gateway keeps no blueprint run pages: a launch starts a job, followed at "
        "/jobs/{job_id}/workflow-progress",
    )


def _owner(request: Request, caller: Caller) -> str:
    """Whose launches these are: the token's id; without authentication every caller is
    one and the same owner (a client's address says nothing about who it is)."""
    if not request.app.state.gatekeeper.authenticator.enabled:
        return "anyone"
    return caller.id


def _launch_view(launch: uc.Launch) -> dict[str, Any]:
    view = launch.as_dict()
    view["progress_url"] = f"{API_PREFIX}/blueprints/launch/progress/{launch.progress_id}"
    return view
