"""Endpoint dependencies: objects the container built once, handed out per request, each
by its type: `use_case: deps.GetJob` is the gateway's one `GetJob`, found through the typed
`Services` (the same object the embedding entry hands out), never by a name string.

The container builds every use case and service when the app is created; a request only
looks its object up. No resolution, and no thread-pool hop, happens per request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request

from mn_api.adapters.telemetry.prometheus import PrometheusTelemetry
from mn_api.application import use_cases as uc
from mn_api.application.idempotency import Idempotency
from mn_api.application.ports import BlueprintSource
from mn_api.config import Settings
from mn_api.container import Container
from mn_api.embedded import Services

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class HttpServices:
    """What endpoints use: the use cases, and the few services routes read directly."""

    services: Services
    settings: Settings
    telemetry: PrometheusTelemetry
    blueprints: BlueprintSource

    @classmethod
    def of(cls, container: Container) -> HttpServices:
        return cls(
            services=Services.of(container),
            settings=container.settings(),
            telemetry=container.telemetry(),
            blueprints=container.blueprints(),
        )


def _from(pick: Callable[[HttpServices], T]) -> Any:
    """`Depends` on what `pick` takes from the app's HttpServices."""

    async def dependency(request: Request) -> T:
        return pick(request.app.state.services)

    return Depends(dependency)


SubmitJob = Annotated[uc.SubmitJob, _from(lambda h: h.services.submit_job)]
SubmitBundle = Annotated[uc.SubmitBundle, _from(lambda h: h.services.submit_bundle)]
ListJobs = Annotated[uc.ListJobs, _from(lambda h: h.services.list_jobs)]
GetJob = Annotated[uc.GetJob, _from(lambda h: h.services.get_job)]
GetJobGraph = Annotated[uc.GetJobGraph, _from(lambda h: h.services.get_job_graph)]
ListEvents = Annotated[uc.ListEvents, _from(lambda h: h.services.list_events)]
StreamEvents = Annotated[uc.StreamEvents, _from(lambda h: h.services.stream_events)]
WorkflowProgress = Annotated[uc.WorkflowProgress, _from(lambda h: h.services.workflow_progress)]
ListDeadLetters = Annotated[uc.ListDeadLetters, _from(lambda h: h.services.list_dead_letters)]
ReplayDeadLetter = Annotated[uc.ReplayDeadLetter, _from(lambda h: h.services.replay_dead_letter)]
CancelJob = Annotated[uc.CancelJob, _from(lambda h: h.services.cancel_job)]
PauseJob = Annotated[uc.PauseJob, _from(lambda h: h.services.pause_job)]
ResumeJob = Annotated[uc.ResumeJob, _from(lambda h: h.services.resume_job)]
ClearJobs = Annotated[uc.ClearJobs, _from(lambda h: h.services.clear_jobs)]
CancelAllJobs = Annotated[uc.CancelAllJobs, _from(lambda h: h.services.cancel_all_jobs)]
LaunchBlueprint = Annotated[uc.LaunchBlueprint, _from(lambda h: h.services.launch_blueprint)]
LaunchLog = Annotated[uc.LaunchLog, _from(lambda h: h.services.launch_log)]
GetSystemSummary = Annotated[uc.GetSystemSummary, _from(lambda h: h.services.get_system_summary)]
GetRuntimeMetrics = Annotated[uc.GetRuntimeMetrics, _from(lambda h: h.services.get_runtime_metrics)]
RuntimeReport = Annotated[uc.RuntimeReport, _from(lambda h: h.services.runtime_report)]
CoreServices = Annotated[uc.CoreServices, _from(lambda h: h.services.core_services)]
CheckRequiredServices = Annotated[
    uc.CheckRequiredServices, _from(lambda h: h.services.check_required_services)
]
JobDefinitions = Annotated[uc.JobDefinitions, _from(lambda h: h.services.job_definitions)]
JoinNode = Annotated[uc.JoinNode, _from(lambda h: h.services.join_node)]
CheckReadiness = Annotated[uc.CheckReadiness, _from(lambda h: h.services.check_readiness)]
ListWebhooks = Annotated[uc.ListWebhooks, _from(lambda h: h.services.list_webhooks)]
RedeliverWebhook = Annotated[uc.RedeliverWebhook, _from(lambda h: h.services.redeliver_webhook)]
Idempotency = Annotated[Idempotency, _from(lambda h: h.services.idempotency)]
Settings = Annotated[Settings, _from(lambda h: h.settings)]
Telemetry = Annotated[PrometheusTelemetry, _from(lambda h: h.telemetry)]
Blueprints = Annotated[BlueprintSource, _from(lambda h: h.blueprints)]
