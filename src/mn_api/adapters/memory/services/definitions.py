"""JobService v2 (1.2.31): job definitions, each a durable record of a manifest and its
payloads started any number of times as runs (definition_runs.py), and their schedules
(kept by the `schedules` group).

A definition: `job_id` (given, or `job_` and an id made from the graph id),
`blueprint_id` (the manifest's `metadata.blueprint_id`, else its graph id), `graph_id`,
`job_name`, `manifest`, `bundle_ref`, `resolved_configuration`, `schedules`,
`schedule_ids`, `storage` (`{"resources": [...]}`: the manifest's `metadata.job_data`
merged with the request's), `owner_node`, `status` (active or archived),
`data_generation` (from 1), `data_dir`, `run_ids`, `latest_run_id`, `created_at`,
`updated_at`. Answers project it (summary, detail) with `run_count` and `schedule_count`;
every answer has `"version": 2`.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from mn_api.adapters.memory.model import _judge
from mn_api.adapters.memory.services._base import (
    JOB_V1,
    JOB_V2,
    Answer,
    CoreRefusal,
    Request,
    Streaming,
    Unary,
    internal,
    iso_now,
    lenient_object,
    precondition,
    quoted,
)
from mn_api.adapters.memory.services.definition_runs import (
    BUNDLE_REF_FIELDS,
    DefinitionRuns,
    RunRecord,
    answer,
    compact,
    term,
)
from mn_api.domain.errors import ManifestInvalidError
from mn_api.domain.payload_paths import payload_path_problem

if TYPE_CHECKING:
    from mn_api.adapters.memory.runtime import InMemoryRuntime

SUMMARY_FIELDS = (
    "job_id",
    "blueprint_id",
    "graph_id",
    "job_name",
    "owner_node",
    "status",
    "data_generation",
    "latest_run_id",
    "created_at",
    "updated_at",
    "bundle_ref",
    "retired_definition_resources",
)
DETAIL_FIELDS = (*SUMMARY_FIELDS, "resolved_configuration", "schedules", "schedule_ids", "storage")
# What UpdateJob may change (never the status).
UPDATABLE = ("resolved_configuration", "schedules", "storage", "job_name")
# What a replaced bundle leaves for the host to clean up.
RETIRED_METADATA = ("mn_storage", "mn_docker_workers", "mn_docker_worker_shared_contexts")
ACCESSES = ("read", "read_only", "ro", "read_write", "write", "rw")
JOB_DATA_ROOT = "/var/lib/mirrorneuron/job_data"
IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SEGMENT = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}$")
_METHODS = (
    "CreateJob",
    "GetJob",
    "ListJobs",
    "UpdateJob",
    "ArchiveJob",
    "ResetJobData",
    "DeleteJob",
    "StartRun",
    "ListRuns",
    "GetRun",
    "PauseRun",
    "ResumeRun",
    "CancelRun",
    "DeleteRun",
    "SendRunInput",
    "CreateJobSchedule",
)


class JobDefinitions(DefinitionRuns):
    name: ClassVar[str] = "jobs_v2"

    def __init__(self, runtime: InMemoryRuntime) -> None:
        self._runtime = runtime
        self.definitions: dict[str, dict[str, Any]] = {}
        # Each definition's manifest text and payloads (a core keeps them as its bundle).
        self.bundles: dict[str, tuple[str, dict[str, bytes]]] = {}
        self.runs: dict[str, RunRecord] = {}

    def unary(self) -> Mapping[str, Unary]:
        return {JOB_V2 + name: getattr(self, _snake(name)) for name in _METHODS}

    def streaming(self) -> Mapping[str, Streaming]:
        return {}

    def reset(self) -> None:
        self.definitions.clear()
        self.bundles.clear()
        self.runs.clear()

    def _now(self) -> str:
        return iso_now(self._runtime._clock)

    async def create_job(self, request: Request) -> Answer:
        manifest_json = request.get("manifest_json", "")
        payloads = _payloads(request)
        manifest = _bundle(manifest_json)
        job_id = request.get("job_id", "") or "job_" + self._runtime.unused_job_id(
            manifest["graph_id"]
        )
        if not IDENTIFIER.fullmatch(job_id):
            raise internal("invalid_job_id")
        if job_id in self.definitions:
            raise internal("job_already_exists")
        storage = _storage(manifest, lenient_object(request.get("storage_json", "")), payloads)
        now = self._now()
        definition = {
            "job_id": job_id,
            "blueprint_id": _blueprint_id(manifest),
            "graph_id": manifest["graph_id"],
            "job_name": manifest.get("job_name") or manifest["graph_id"],
            "manifest": manifest,
            "bundle_ref": _bundle_ref(manifest_json, payloads, manifest),
            "resolved_configuration": lenient_object(
                request.get("resolved_configuration_json", "")
            ),
            "schedules": [],
            "schedule_ids": [],
            "storage": storage,
            "owner_node": self._runtime.leader,
            "status": "active",
            "data_generation": 1,
            "data_dir": f"{JOB_DATA_ROOT}/{job_id}",
            "run_ids": [],
            "created_at": now,
            "updated_at": now,
        }
        self.definitions[job_id] = definition
        self.bundles[job_id] = (manifest_json, payloads)
        return answer(summary(definition))

    async def get_job(self, request: Request) -> Answer:
        return answer(detail(self._definition(request.get("job_id", ""))))

    async def list_jobs(self, request: Request) -> Answer:
        archived = bool(request.get("include_archived", False))
        listed = [
            summary(definition)
            for _, definition in sorted(self.definitions.items())
            if archived or definition["status"] != "archived"
        ]
        return answer({"data": listed})

    async def update_job(self, request: Request) -> Answer:
        job_id = request.get("job_id", "")
        definition = self._definition(job_id)
        attrs = lenient_object(request.get("attrs_json", ""))
        manifest_json = request.get("manifest_json", "")
        if not manifest_json.strip():
            changes = self._changes(definition, attrs)
            definition.update(changes, updated_at=self._now())
            return answer(summary(definition))
        if definition["status"] != "active":
            raise internal("job_not_active")
        self._no_live_runs(definition)
        payloads = _payloads(request)
        manifest = _bundle(manifest_json)
        current = (definition["graph_id"], definition["blueprint_id"])
        replacement = (manifest["graph_id"], _blueprint_id(manifest))
        if current != replacement:
            raise precondition(term("job_bundle_identity_mismatch", current, replacement))
        changes = self._changes(definition, attrs)
        metadata = definition["manifest"].get("metadata")
        metadata = metadata if isinstance(metadata, Mapping) else {}
        retired = {"metadata": {k: metadata[k] for k in RETIRED_METADATA if k in metadata}}
        definition.update(
            changes,
            blueprint_id=replacement[1],
            graph_id=manifest["graph_id"],
            job_name=manifest.get("job_name") or manifest["graph_id"],
            manifest=manifest,
            bundle_ref=_bundle_ref(manifest_json, payloads, manifest),
            updated_at=self._now(),
        )
        self.bundles[job_id] = (manifest_json, payloads)
        return answer({**summary(definition), "retired_definition_resources": retired})

    def _changes(self, definition: Mapping[str, Any], attrs: dict[str, Any]) -> dict[str, Any]:
        """The attributes UpdateJob applies; new storage declarations need no live run."""
        changes = {key: attrs[key] for key in UPDATABLE if key in attrs}
        if "storage" in changes:
            self._no_live_runs(definition)
            storage = changes["storage"]
            if not isinstance(storage, dict):
                raise internal("invalid_job_data_declarations")
            job_id = definition["job_id"]
            changes["storage"] = _storage(definition["manifest"], storage, self.bundles[job_id][1])
        return changes

    async def archive_job(self, request: Request) -> Answer:
        definition = self._definition(request.get("job_id", ""))
        self._no_live_runs(definition)
        definition["status"] = "archived"
        await self._each_schedule(definition, "PauseSchedule")
        return answer(summary(definition))

    async def reset_job_data(self, request: Request) -> Answer:
        definition = self._definition(request.get("job_id", ""))
        self._no_live_runs(definition)
        definition["data_generation"] += 1
        return answer(summary(definition))

    async def delete_job(self, request: Request) -> Answer:
        job_id = request.get("job_id", "")
        if not request.get("confirmed", False):
            raise internal("confirmation_required")
        definition = self._definition(job_id)
        self._no_live_runs(definition)
        await self._each_schedule(definition, "DeleteSchedule")
        del self.definitions[job_id]
        del self.bundles[job_id]
        return answer({"job_id": job_id, "status": "deleted"})

    async def _each_schedule(self, definition: Mapping[str, Any], method: str) -> None:
        """Pause or delete each of the definition's schedules through the schedules group
        (one the group no longer knows is passed over)."""
        services = self._runtime.services
        for schedule_id in list(definition["schedule_ids"]):
            request = {"schedule_id": schedule_id, "attrs_json": "", "reason": "", "version": 1}
            try:
                await services.call(JOB_V1 + method, request)
            except CoreRefusal as refused:
                if refused.code == "UNIMPLEMENTED":
                    return
                if "not found" not in refused.message:
                    raise

    async def create_job_schedule(self, request: Request) -> Answer:
        job_id = request.get("job_id", "")
        definition = self._definition(job_id)
        if definition["status"] != "active":
            raise internal("job_not_active")
        schedules = self._runtime.services.group("schedules")
        if schedules is None:
            raise CoreRefusal("UNIMPLEMENTED", "Method not found!")

        async def start_run(inputs: dict[str, Any]) -> str:
            return await self.start(job_id, None, inputs)

        record = await schedules.create_for_definition(
            job_id=job_id,
            owner_node=definition["owner_node"],
            manifest=orjson.loads(self.bundles[job_id][0]),
            schedule_json=request.get("schedule_json", ""),
            source_json=request.get("source_json", ""),
            start_run=start_run,
        )
        schedule_id = record.get("schedule_id")
        if isinstance(schedule_id, str) and schedule_id not in definition["schedule_ids"]:
            definition["schedule_ids"].append(schedule_id)
        return answer(schedule(record))


def summary(definition: Mapping[str, Any]) -> dict[str, Any]:
    return _projected(definition, SUMMARY_FIELDS)


def detail(definition: Mapping[str, Any]) -> dict[str, Any]:
    return _projected(definition, DETAIL_FIELDS)


def _projected(definition: Mapping[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    document = {key: definition[key] for key in fields if key in definition}
    document["run_count"] = len(definition["run_ids"])
    document["schedule_count"] = len(definition["schedule_ids"])
    if "bundle_ref" in document:
        document["bundle_ref"] = compact(document["bundle_ref"])
    return document


def schedule(record: Mapping[str, Any]) -> dict[str, Any]:
    """A schedule as JobService v2 answers it: without its manifest, dispatches and active
    runs, with their counts (and `version` 2, not the first service's 1)."""
    hidden = ("manifest", "dispatches", "active_job_ids", "active_run_ids", "version")
    document = {key: value for key, value in record.items() if key not in hidden}
    dispatches = record.get("dispatches")
    document["dispatch_count"] = len(dispatches) if isinstance(dispatches, list) else 0
    active = record.get("active_run_ids", record.get("active_job_ids"))
    document["active_run_count"] = len(active) if isinstance(active, list) else 0
    if "bundle_ref" in document:
        document["bundle_ref"] = compact(document["bundle_ref"])
    return document


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _payloads(request: Request) -> dict[str, bytes]:
    """The request's payloads, each path refused as the core refuses an unsafe one."""
    payloads = dict(request.get("payloads") or {})
    for path in payloads:
        if payload_path_problem(path) is not None:
            raise internal(
                f"payload path must be relative and stay inside payloads/: {quoted(path)}"
            )
    return payloads


def _bundle(manifest_json: str) -> dict[str, Any]:
    """The manifest, judged as the core judges a bundle's (its problems as one list)."""
    try:
        _judge(manifest_json)
    except ManifestInvalidError as refused:
        raise internal("[" + ", ".join(quoted(p) for p in refused.errors) + "]") from None
    manifest: dict[str, Any] = orjson.loads(manifest_json)
    return manifest


def _blueprint_id(manifest: Mapping[str, Any]) -> str:
    metadata = manifest.get("metadata")
    declared = metadata.get("blueprint_id") if isinstance(metadata, Mapping) else None
    return declared if isinstance(declared, str) and declared else manifest["graph_id"]


def _bundle_ref(
    manifest_json: str, payloads: Mapping[str, bytes], manifest: Mapping[str, Any]
) -> dict[str, Any]:
    """Where a core keeps the definition's bundle; here its fingerprint (a SHA-256 of the
    manifest and the payloads) and size."""
    digest = hashlib.sha256(manifest_json.encode())
    size = len(manifest_json.encode())
    for path in sorted(payloads):
        digest.update(path.encode() + b"\0" + payloads[path])
        size += len(payloads[path])
    reference = {
        "bundle_fingerprint": digest.hexdigest(),
        "bundle_bytes": size,
        "graph_id": manifest["graph_id"],
        "manifest_version": str(manifest["manifest_version"]),
    }
    return {key: reference[key] for key in BUNDLE_REF_FIELDS if key in reference}


def _storage(
    manifest: Mapping[str, Any], explicit: Mapping[str, Any], payloads: Mapping[str, bytes]
) -> dict[str, Any]:
    """The data the definition's runs share: the manifest's `metadata.job_data` merged
    with the request's declarations, each resource checked as the core checks it."""
    metadata = manifest.get("metadata")
    declared = metadata.get("job_data") if isinstance(metadata, Mapping) else None
    storage = dict(declared) if isinstance(declared, Mapping) else {}
    storage.update(explicit)
    resources = storage.get("resources", [])
    if not isinstance(resources, list) or not all(_resource_valid(r) for r in resources):
        raise internal("invalid_job_data_declarations")
    for resource in resources:
        seed = resource.get("seed")
        if seed is not None and not _seed_in_bundle(seed[2:], payloads):
            raise internal(term("invalid_job_data_seed", resource["name"]))
    return {**storage, "resources": resources}


def _resource_valid(resource: Any) -> bool:
    if not isinstance(resource, Mapping):
        return False
    name = resource.get("name")
    seed = resource.get("seed")
    return (
        _relative(name)
        and _relative(resource.get("path", name))
        and resource.get("access", "read_write") in ACCESSES
        and (seed is None or (isinstance(seed, str) and seed.startswith("@/")))
    )


def _relative(path: Any) -> bool:
    return (
        isinstance(path, str)
        and path != ""
        and not path.startswith("/")
        and all(_SEGMENT.fullmatch(part) for part in path.split("/") if part)
    )


def _seed_in_bundle(relative: str, payloads: Mapping[str, bytes]) -> bool:
    """Whether a folder of the bundle (manifest.json and payloads/...) is at `relative`."""
    folder = posixpath.normpath(relative)
    if folder.startswith(".."):
        return False
    if folder in (".", "payloads"):
        return True
    return any(f"payloads/{path}".startswith(folder + "/") for path in payloads)
