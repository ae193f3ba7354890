"""Health, readiness, the runtime's summary and its metrics."""

from fastapi import APIRouter, Depends
from starlette.responses import PlainTextResponse, Response

from mn_api.domain.errors import DomainError
from mn_api.entrypoints.http import deps
from mn_api.entrypoints.http.auth import authenticate
from mn_api.entrypoints.http.models import (
    API_CONTRACT,
    HealthResponse,
    ReadyResponse,
    RuntimeMetrics,
    SystemSummary,
)
from mn_api.entrypoints.http.problems import problem_response
from mn_api.entrypoints.http.responses import json_response
from mn_api.entrypoints.http.routers import API_PREFIX, RUNTIME_ERRORS, problems

public = APIRouter(prefix=API_PREFIX, tags=["system"])
# The paths orchestrators probe by habit, beside the API and never behind credentials.
probes = APIRouter(tags=["probes"])
router = APIRouter(prefix=API_PREFIX, tags=["system"], dependencies=[Depends(authenticate)])


@public.get("/health", response_model=HealthResponse, summary="Is the gateway up")
@probes.get(
    "/healthz",
    response_model=HealthResponse,
    summary="Is the gateway up (a probe)",
    operation_id="healthz",
)
@probes.get(
    "/livez",
    response_model=HealthResponse,
    summary="Is the gateway alive (a probe)",
    operation_id="livez",
)
async def health(settings: deps.Settings) -> Response:
    """Answers without calling the runtime."""
    return json_response(
        {
            "status": "ok",
            "auth": "enabled" if settings.auth_enabled else "disabled",
            "api_contract": API_CONTRACT,
        }
    )


@public.get(
    "/ready",
    response_model=ReadyResponse,
    summary="Does the runtime answer",
    responses=problems(503),
)
@probes.get(
    "/readyz",
    response_model=ReadyResponse,
    summary="Does the runtime answer (a probe)",
    responses=problems(503),
    operation_id="readyz",
)
async def ready(
    check: deps.CheckReadiness,
) -> Response:
    try:
        await check()
    except DomainError as err:
        return problem_response(
            503,
            "not_ready",
            f"not ready: {err.detail}",
            headers={"Retry-After": "5"},
        )
    return json_response({"status": "ready"})


@router.get(
    "/system/summary",
    response_model=SystemSummary,
    responses=problems(*RUNTIME_ERRORS),
    summary="The runtime's nodes and executor pools",
)
async def system_summary(
    use_case: deps.GetSystemSummary,
) -> Response:
    return json_response(await use_case())


@router.get(
    "/metrics",
    response_model=RuntimeMetrics,
    responses=problems(*RUNTIME_ERRORS),
    summary="Runtime metrics",
)
async def runtime_metrics(
    use_case: deps.GetRuntimeMetrics,
) -> Response:
    return json_response(await use_case())


# The gateway's own metrics for Prometheus, at the root as scrapers expect.
exposition = APIRouter(tags=["system"], dependencies=[Depends(authenticate)])


@exposition.get(
    "/metrics",
    response_class=PlainTextResponse,
    summary="The gateway's own metrics (Prometheus exposition format)",
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def prometheus_metrics(
    telemetry: deps.Telemetry,
) -> Response:
    return Response(telemetry.exposition(), media_type=telemetry.content_type)
