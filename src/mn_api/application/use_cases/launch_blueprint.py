"""LaunchBlueprint: start a job from a blueprint of the catalogue, a folder (or .zip) under
the launch roots, or an uploaded bundle, reporting each step of the launch under a
progress id the client may poll (as the newest Web UI does).

A launch runs within its request: when it answers, the job has been submitted (or the
launch has failed, and the answer is the problem). The record stays readable for an hour,
in this process, by the caller that made it. A progress id is claimed before anything is
read, so launches sent at once under one id start one job: while it runs the others are
refused (LaunchInProgressError); once it has started its job they get its answer. Another
caller cannot use the id (ProgressIdTakenError). A launch that failed before its job could
have reached the runtime may be sent again under the same id; one that failed while its
job was being submitted may not (LaunchOutcomeUnknownError).
"""

from __future__ import annotations

import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mn_api.application.ports import Blueprint, BlueprintSource, BundleContents, BundleStore
from mn_api.application.use_cases.submit_job import SubmitJob, SubmitJobCommand
from mn_api.domain.errors import (
    DomainError,
    LaunchInProgressError,
    LaunchNotFoundError,
    LaunchOutcomeUnknownError,
    ProgressIdTakenError,
    RequestValidationError,
)
from mn_api.domain.events import iso_timestamp

PHASES = (
    ("resolve_source", "Resolve blueprint source"),
    ("requirements", "Check runtime requirements"),
    ("model_install", "Install required runtime models"),
    ("validation", "Validate blueprint and inputs"),
    ("submit", "Submit job to runtime"),
    ("open_job_progress", "Open job progress"),
)
SOURCES = ("catalog", "path", "bundle")
PROGRESS_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
KEPT_LAUNCHES = 1000
KEPT_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class LaunchRequest:
    source: str
    blueprint_id: str | None = None
    path: str | None = None
    bundle_id: str | None = None
    progress_id: str | None = None
    config_overrides: Mapping[str, Any] | None = None
    # Who launches (a credential's id): a progress id belongs to the owner that claimed it.
    owner: str = ""


@dataclass
class Launch:
    """One launch and how far it went, step by step."""

    progress_id: str
    source: str
    started_at: float
    owner: str = ""
    status: str = "running"
    job_id: str | None = None
    blueprint: Blueprint | None = None
    phase: str | None = None
    error: str | None = None
    phases: dict[str, dict[str, str]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    # Whether the launch failed while its job was being submitted, so it may have started.
    may_have_run: bool = False

    def step(self, phase: str, status: str, message: str, at: float) -> None:
        self.phase = phase
        self.phases[phase] = {"status": status, "message": message}
        self.events.append(
            {"ts": iso_timestamp(at), "phase": phase, "status": status, "message": message}
        )

    def as_dict(self) -> dict[str, Any]:
        labels = dict(PHASES)
        answer: dict[str, Any] = {
            "version": 1,
            "progress_id": self.progress_id,
            "source": self.source,
            "status": self.status,
            "completed": self.status in ("completed", "failed"),
            "phases": [
                {
                    "id": phase,
                    "label": labels[phase],
                    "status": self.phases.get(phase, {}).get("status", "pending"),
                    "message": self.phases.get(phase, {}).get("message", ""),
                }
                for phase, _ in PHASES
            ],
            "events": list(self.events),
        }
        if self.events:
            answer["latest"] = self.events[-1]
        if self.phase is not None:
            answer["current_phase"] = self.phase
        if self.job_id is not None:
            answer["job_id"] = self.job_id
            answer["id"] = self.job_id
        if self.blueprint is not None:
            answer["blueprint"] = blueprint_view(self.blueprint)
        if self.error is not None:
            answer["error"] = self.error
        return answer


def blueprint_view(blueprint: Blueprint) -> dict[str, str]:
    view = {"id": blueprint.id, "name": blueprint.name, "description": blueprint.description}
    if blueprint.category:
        view["category"] = blueprint.category
    return view


class LaunchLog:
    """The launches of this process, the newest KEPT_LAUNCHES for KEPT_SECONDS each."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._launches: OrderedDict[str, Launch] = OrderedDict()

    def get(self, progress_id: str, owner: str = "") -> Launch:
        """The owner's launch under this id; LaunchNotFoundError for anyone else's."""
        launch = self._live(progress_id)
        if launch is None or launch.owner != owner:
            raise LaunchNotFoundError(progress_id)
        return launch

    def find(self, progress_id: str, owner: str = "") -> Launch | None:
        try:
            return self.get(progress_id, owner)
        except LaunchNotFoundError:
            return None

    def claim(self, progress_id: str, owner: str, source: str) -> tuple[Launch, bool]:
        """The launch to run under `progress_id`, taken for `owner` at once (nothing awaits
        in between, so no other launch can take it meanwhile), and True; or the earlier
        launch that started its job, and False. Raises ProgressIdTakenError (another
        owner's id), LaunchInProgressError (still running) or LaunchOutcomeUnknownError
        (it failed while its job was being submitted)."""
        earlier = self._live(progress_id)
        if earlier is not None:
            if earlier.owner != owner:
                raise ProgressIdTakenError(progress_id)
            if earlier.job_id is not None:
                return earlier, False
            if earlier.status == "running":
                raise LaunchInProgressError(progress_id)
            if earlier.may_have_run:
                raise LaunchOutcomeUnknownError(progress_id)
        launch = Launch(progress_id, source, self._clock(), owner=owner)
        self.add(launch)
        return launch, True

    def add(self, launch: Launch) -> None:
        self._launches[launch.progress_id] = launch
        self._launches.move_to_end(launch.progress_id)
        while len(self._launches) > KEPT_LAUNCHES:
            # The oldest that has ended goes first: a running launch keeps its claim.
            oldest = next(
                (key for key, kept in self._launches.items() if kept.status != "running"),
                next(iter(self._launches)),
            )
            del self._launches[oldest]

    def _live(self, progress_id: str) -> Launch | None:
        launch = self._launches.get(progress_id)
        if launch is None or launch.started_at + KEPT_SECONDS < self._clock():
            return None
        return launch


class LaunchBlueprint:
    def __init__(
        self,
        blueprints: BlueprintSource,
        bundles: BundleStore,
        submit_job: SubmitJob,
        log: LaunchLog,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._blueprints = blueprints
        self._bundles = bundles
        self._submit = submit_job
        self._log = log
        self._clock = clock

    async def __call__(self, request: LaunchRequest) -> Launch:
        progress_id = _progress_id(request.progress_id)
        launch, fresh = self._log.claim(progress_id, request.owner, request.source)
        if not fresh:
            return launch  # the same launch sent again: its job, not a second one
        try:
            await self._run(launch, request)
        except DomainError as error:
            self._fail(launch, error.detail, error.may_have_run)
            raise
        except BaseException:
            # Whatever went wrong, the launch has ended: it must not read `running`.
            self._fail(launch, "the launch failed unexpectedly", True)
            raise
        launch.status = "completed"
        return launch

    def _fail(self, launch: Launch, detail: str, may_have_run: bool) -> None:
        submitting = launch.phase == "submit" and launch.phases["submit"]["status"] == "running"
        launch.status = "failed"
        launch.error = detail
        launch.may_have_run = submitting and may_have_run
        launch.step(launch.phase or PHASES[0][0], "failed", detail, self._clock())

    async def _run(self, launch: Launch, request: LaunchRequest) -> None:
        now = self._clock
        launch.step("resolve_source", "running", f"reading the {request.source}", now())
        command = await self._command(launch, request)
        launch.step("resolve_source", "completed", "blueprint read", now())
        launch.step(
            "requirements", "skipped", "the core checks them when the job is submitted", now()
        )
        launch.step("model_install", "skipped", "this gateway installs no models", now())
        launch.step("validation", "running", "checking the inputs", now())
        if request.config_overrides:
            raise RequestValidationError(
                "config_overrides are not supported: change the blueprint's manifest instead",
                [{"loc": ["body", "config_overrides"], "msg": "not supported by this gateway"}],
            )
        launch.step("submit", "running", "submitting the job", now())
        ack = await self._submit(command)
        launch.job_id = ack.job_id
        launch.step("validation", "completed", "the core accepted the manifest", now())
        launch.step("submit", "completed", f"job {ack.job_id} submitted", now())
        launch.step("open_job_progress", "completed", f"follow job {ack.job_id}", now())

    async def _command(self, launch: Launch, request: LaunchRequest) -> SubmitJobCommand:
        if request.source == "catalog":
            if not request.blueprint_id:
                raise _missing("blueprint_id", "a catalog launch names its blueprint_id")
            blueprint, contents = await self._blueprints.blueprint(request.blueprint_id)
            launch.blueprint = blueprint
            return SubmitJobCommand(
                manifest_json=contents.manifest_json, payloads=contents.payloads
            )
        if request.source == "path":
            if not request.path:
                raise _missing("path", "a path launch names its path")
            found = await self._blueprints.at_path(request.path)
            if isinstance(found, BundleContents):
                return SubmitJobCommand(manifest_json=found.manifest_json, payloads=found.payloads)
            try:  # the archive as it was checked, opened once by the blueprint source
                stored = await self._bundles.save(found)
            finally:
                found.close()
            return SubmitJobCommand(bundle_id=stored.bundle_id)
        if request.source == "bundle":
            if not request.bundle_id:
                raise _missing("_bundle_path", "a bundle launch names the uploaded bundle")
            return SubmitJobCommand(bundle_id=request.bundle_id)
        raise RequestValidationError(
            f"unknown launch source {request.source[:40]!r}: catalog, path or bundle",
            [{"loc": ["body", "source"], "msg": "must be catalog, path or bundle"}],
        )


def _progress_id(given: str | None) -> str:
    if given is None or given == "":
        return f"launch-{secrets.token_hex(8)}"
    if not PROGRESS_ID.match(given):
        raise RequestValidationError(
            "progress_id: letters, digits, '.', '_', ':' and '-', at most 128",
            [{"loc": ["body", "progress_id"], "msg": "not a usable progress id"}],
        )
    return given


def _missing(field_name: str, detail: str) -> RequestValidationError:
    return RequestValidationError(detail, [{"loc": ["body", field_name], "msg": "required"}])
