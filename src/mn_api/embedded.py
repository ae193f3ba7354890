"""The gateway's use cases in another program, without HTTP: one async context manager.

    async with open_gateway() as services:          # the in-memory runtime
        ack = await services.submit_job(SubmitJobCommand(manifest_json=text))

`open_gateway` builds everything from one `Settings` (the in-memory runtime unless they
say `runtime="grpc"`), starts what runs around the use cases in the order the HTTP
gateway starts it, hands back `Services` (one typed attribute per use case), and stops
and closes everything on the way out, an error included. Settings are fixed before the
first object is built: nothing can be built from other settings than the use cases use.
"""

from __future__ import annotations

import difflib
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mn_api.application import use_cases as uc
from mn_api.application.idempotency import Idempotency
from mn_api.config import Settings
from mn_api.container import Container, Running, build_container

if TYPE_CHECKING:
    from fastapi import FastAPI


# The variable naming the folder of the gateway's state on this host.
BUNDLE_DIR = "MN_API_BUNDLE_DIR"


@dataclass(frozen=True, slots=True)
class Services:
    """Every use case of the gateway, built for one running gateway."""

    submit_job: uc.SubmitJob
    submit_bundle: uc.SubmitBundle
    list_jobs: uc.ListJobs
    get_job: uc.GetJob
    get_job_graph: uc.GetJobGraph
    list_events: uc.ListEvents
    stream_events: uc.StreamEvents
    workflow_progress: uc.WorkflowProgress
    list_dead_letters: uc.ListDeadLetters
    replay_dead_letter: uc.ReplayDeadLetter
    cancel_job: uc.CancelJob
    pause_job: uc.PauseJob
    resume_job: uc.ResumeJob
    clear_jobs: uc.ClearJobs
    cancel_all_jobs: uc.CancelAllJobs
    launch_blueprint: uc.LaunchBlueprint
    launch_log: uc.LaunchLog
    get_system_summary: uc.GetSystemSummary
    core_services: uc.CoreServices
    check_required_services: uc.CheckRequiredServices
    job_definitions: uc.JobDefinitions
    join_node: uc.JoinNode
    get_runtime_metrics: uc.GetRuntimeMetrics
    runtime_report: uc.RuntimeReport
    check_readiness: uc.CheckReadiness
    list_webhooks: uc.ListWebhooks
    redeliver_webhook: uc.RedeliverWebhook
    idempotency: Idempotency

    @classmethod
    def of(cls, container: Container) -> Services:
        """Each use case as the container builds it (one object for the gateway's life)."""
        return cls(**{item.name: getattr(container, item.name)() for item in fields(cls)})


def _by_field(values: dict[str, Any]) -> dict[str, Any]:
    """Values under the settings' own names (a list setting's `_raw` field may be given
    without the suffix); a name no setting has is an error, never ignored."""
    known = Settings.model_fields
    named = {}
    for name, value in values.items():
        field = name if name in known else f"{name}_raw"
        if field not in known:
            close = difflib.get_close_matches(name, list(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise TypeError(f"no setting is called {name!r}{hint}")
        named[field] = value
    return named


def _settings(settings: Settings | None, values: dict[str, Any]) -> Settings:
    if settings is not None and values:
        raise TypeError("give settings or values of settings, not both")
    if settings is None:
        settings = Settings(**{"runtime": "memory", **_by_field(values)})
    return settings


def create_app(settings: Settings | None = None, **values: Any) -> FastAPI:
    """The gateway's ASGI app, to serve or to test in-process: `settings`, or the values of
    settings by name as for `open_gateway` (the in-memory runtime unless given). It starts
    and stops with the ASGI lifespan (`TestClient(app)` as a context manager, any server)."""
    from mn_api.entrypoints.http import create_app as http_app

    return http_app(build_container(_settings(settings, values)))


@asynccontextmanager
async def open_gateway(settings: Settings | None = None, **values: Any) -> AsyncIterator[Services]:
    """A running gateway without HTTP: `settings`, or the values of settings by name
    (`runtime="grpc"`, `grpc_target="core:50051"`, ...; the in-memory runtime unless
    given). The environment's `MN_*` variables fill what is not given, as for `mn-api`.

    Unless a folder for its state is named (`bundle_dir`, `MN_API_BUNDLE_DIR`, or in
    `settings`), the gateway keeps its state (bundles, idempotency keys, topologies) in a
    temporary folder of its own, removed on the way out: nothing is shared with another
    program unless asked."""
    with ExitStack() as private:
        if settings is None and "bundle_dir" not in values and BUNDLE_DIR not in os.environ:
            folder = private.enter_context(tempfile.TemporaryDirectory(prefix="mn-api-"))
            values = {**values, "bundle_dir": Path(folder)}
        container = build_container(_settings(settings, values))
        running = Running(container)
        await running.start()
        try:
            yield Services.of(container)
        finally:
            await running.stop()
