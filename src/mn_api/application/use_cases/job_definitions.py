"""JobDefinitions: the core's job definitions and their runs (JobService v2, 1.2.31).

A definition is a manifest with its payloads kept by the core and started any number of
times; each start is a run, which the first job service knows as a job under the run id.
What the gateway adds to the core's calls: a manifest is judged by the manifest rules and
its payload paths and size are checked before anything is sent (as a submission's are),
and a run the core refuses to pause or resume "because it is not running" is told apart
from a run it does not know.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mn_api.application.ports import RuntimePort
from mn_api.application.use_cases.core_services import CoreServices
from mn_api.application.use_cases.submit_job import check_submission_size
from mn_api.domain.errors import (
    InvalidTransitionError,
    ManifestInvalidError,
    RecordNotFoundError,
)
from mn_api.domain.manifest import check_manifest
from mn_api.domain.payload_paths import check_payload_path

JOB_V2 = "/mirrorneuron.job.v2.JobService/"
VERSION = 2
# What a NOT_FOUND of the core is about, by the route's subject.
DEFINITION = "job_definition"
RUN = "run"


@dataclass(frozen=True, slots=True)
class DefinitionSource:
    """A manifest as JSON text (an object) and its payload files by path."""

    manifest_json: str
    payloads: Mapping[str, bytes] = field(default_factory=dict)


class JobDefinitions:
    def __init__(self, runtime: RuntimePort) -> None:
        self._runtime = runtime
        self._core = CoreServices(runtime)

    async def call(self, method: str, request: Mapping[str, Any], *, kind: str) -> Any:
        """One method of the service: its document, with `version` 2 kept as the core
        sends it (1 added only where the core sent none)."""
        return await self._core.call(JOB_V2 + method, {**request, "version": VERSION}, kind=kind)

    async def create(
        self,
        source: DefinitionSource,
        *,
        job_id: str | None,
        configuration: Mapping[str, Any],
        storage: Mapping[str, Any],
    ) -> Any:
        self._check(source)
        return await self.call(
            "CreateJob",
            {
                "manifest_json": source.manifest_json,
                "payloads": dict(source.payloads),
                "job_id": job_id or "",
                "resolved_configuration_json": json.dumps(configuration),
                "storage_json": json.dumps(storage),
            },
            kind=DEFINITION,
        )

    async def update(
        self, job_id: str, *, attrs: Mapping[str, Any], source: DefinitionSource | None
    ) -> Any:
        request: dict[str, Any] = {"job_id": job_id, "attrs_json": json.dumps(attrs)}
        if source is not None:
            self._check(source)
            request["manifest_json"] = source.manifest_json
            request["payloads"] = dict(source.payloads)
        return await self.call("UpdateJob", request, kind=DEFINITION)

    async def control_run(self, run_id: str, action: str) -> Any:
        """PauseRun, ResumeRun or CancelRun. A core refuses to pause or resume a run that
        is not running as it refuses an unknown one (NOT_FOUND): the run is looked up to
        tell which, and a known one is a refused transition."""
        try:
            return await self.call(action, {"run_id": run_id}, kind=RUN)
        except RecordNotFoundError as refused:
            if action == "CancelRun":
                raise
            run = await self.call("GetRun", {"run_id": run_id}, kind=RUN)
            status = run.get("status") if isinstance(run, dict) else None
            raise InvalidTransitionError(
                f"run {run_id} is {status or 'not running'}: {refused.detail}"
            ) from None

    def _check(self, source: DefinitionSource) -> None:
        """The manifest judged by the manifest rules, the payload paths and the size
        checked, before anything is sent."""
        try:
            manifest = json.loads(source.manifest_json)
        except ValueError as err:
            raise ManifestInvalidError([f"the manifest is not JSON: {err}"]) from None
        problems = check_manifest(manifest)
        if problems:
            raise ManifestInvalidError(problems.listed, problems.total)
        for path in source.payloads:
            check_payload_path(path)
        check_submission_size(
            self._runtime.message_limit_bytes, source.manifest_json, source.payloads
        )
