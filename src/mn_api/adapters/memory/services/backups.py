"""JobService.ExportJobBackup and RestoreJobBackup (1.2.5 and newer): a paused job, its
history and its bundle written out, and written back as a new paused job (the core's
JobBackup module).

The backup document (`backup_json`): `schema_version` (`mn.backup.v1` on 1.2.5,
`mn.backup.v2` on 1.2.31, whose core takes no other), `created_at`, `source`,
`target_policy`, `sections`, `runtime` (`job`: the job's record with its manifest;
`events`: its history), `bundle` (`file_count`, `files`) and `version`. The bundle's files
come beside it: `manifest.json` and `payloads/...`. Refusals carry the core's reason
quoted, with NOT_FOUND for one that says "not found", FAILED_PRECONDITION for one that
says "must be paused", and INVALID_ARGUMENT for any other.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from mn_api.adapters.memory.services._base import (
    JOB_V1,
    Answer,
    CoreRefusal,
    Request,
    Streaming,
    Unary,
    dumps,
    invalid,
    iso_now,
    versioned,
)
from mn_api.adapters.memory.services.definition_runs import inspected
from mn_api.domain.errors import ManifestInvalidError
from mn_api.domain.manifest import Manifest
from mn_api.domain.payload_paths import payload_path_problem
from mn_api.domain.status import JobStatus

if TYPE_CHECKING:
    from mn_api.adapters.memory.runtime import InMemoryRuntime

RESTORE_REASON = "job was restored from a backup and must remain paused"
SECTIONS = {
    "runtime/job.json": True,
    "runtime/events.jsonl": True,
    "bundle/payloads": True,
    "run_store": "optional",
    "knowledge": "optional",
}
TARGET_POLICY = {
    "restore_mode": "clone",
    "status_after_restore": "paused",
    "job_id": "generate_new",
    "run_id": "generate_new",
}
PAYLOADS = "payloads/"


class Backups:
    name: ClassVar[str] = "backups"

    def __init__(self, runtime: InMemoryRuntime) -> None:
        self._runtime = runtime
        self.schema = runtime.release.backup_schema
        self._restores = itertools.count(1)

    def unary(self) -> Mapping[str, Unary]:
        return {JOB_V1 + "ExportJobBackup": self.export, JOB_V1 + "RestoreJobBackup": self.restore}

    def streaming(self) -> Mapping[str, Streaming]:
        return {}

    def reset(self) -> None:
        self._restores = itertools.count(1)

    def _now(self) -> str:
        return iso_now(self._runtime._clock)

    async def export(self, request: Request) -> Answer:
        job_id = request.get("job_id", "")
        runtime = self._runtime
        if not job_id:
            raise _refused("job_id is required")
        if not runtime.has_job(job_id):
            raise _refused(f"job {job_id} was not found")
        job = runtime.job_record(job_id)
        if job.status is not JobStatus.PAUSED:
            raise _refused(
                f"job {job_id} must be paused before backup; current status is {job.status.value}"
            )
        record = (await runtime.get_job(job_id)).value["job"]
        record["manifest"] = manifest_map(job.manifest)
        files = {"manifest.json": orjson.dumps(record["manifest"], option=orjson.OPT_INDENT_2)}
        files.update({PAYLOADS + path: data for path, data in job.payloads.items()})
        backup = {
            "schema_version": self.schema,
            "created_at": self._now(),
            "source": _source(record),
            "target_policy": dict(TARGET_POLICY),
            "sections": {**SECTIONS, "bundle/manifest.json": True},
            "runtime": {"job": record, "events": [orjson.loads(raw) for raw in job.events]},
            "bundle": {"file_count": len(files), "files": sorted(files)},
        }
        return {"backup_json": dumps(versioned(backup)), "bundle_files": files, "version": 1}

    async def restore(self, request: Request) -> Answer:
        try:
            backup = orjson.loads(request.get("backup_json", ""))
        except orjson.JSONDecodeError as err:
            raise invalid(f"backup_json must be valid JSON: {err}") from None
        if not isinstance(backup, dict):
            raise _refused("invalid backup payload")
        schema = backup.get("schema_version")
        if "schema_version" not in backup:
            raise _refused("backup is missing schema_version")
        if schema != self.schema:
            raise _refused(f"unsupported backup schema {inspected(schema)}")
        runtime_section = backup.get("runtime")
        if not isinstance(runtime_section, dict):
            raise _refused("backup is missing runtime state")
        old_job = runtime_section.get("job")
        if not isinstance(old_job, dict):
            raise _refused("backup is missing runtime/job.json")
        source = backup.get("source") if isinstance(backup.get("source"), dict) else {}
        mn_cli = _mn_cli(old_job)
        old_job_id = _text(source.get("job_id") or old_job.get("job_id"))
        if old_job_id is None:
            raise _refused("backup is missing source job_id")
        old_manifest = old_job.get("manifest") if isinstance(old_job.get("manifest"), dict) else {}
        blueprint_id = _text(
            request.get("blueprint_id")
            or source.get("blueprint_id")
            or mn_cli.get("blueprint_id")
            or old_job.get("graph_id")
            or old_manifest.get("graph_id")
        )
        if blueprint_id is None:
            raise _refused("restore requires a target blueprint_id")
        run_id = _text(request.get("run_id")) or f"restore-{next(self._restores)}"
        job_id = self._runtime.unused_job_id(blueprint_id)
        manifest_json, payloads = _bundle(dict(request.get("bundle_files") or {}))
        manifest = orjson.loads(manifest_json)
        manifest["metadata"] = _annotated(manifest.get("metadata"), blueprint_id, run_id)
        source_run_id = source.get("run_id") or mn_cli.get("blueprint_run_id")
        provenance = {
            "schema_version": self.schema,
            "restored_at": self._now(),
            "source": _present(
                job_id=old_job_id,
                run_id=source_run_id,
                blueprint_id=source.get("blueprint_id") or mn_cli.get("blueprint_id"),
                graph_id=source.get("graph_id")
                or old_job.get("graph_id")
                or old_manifest.get("graph_id"),
                created_at=backup.get("created_at"),
            ),
            "target": {"job_id": job_id, "run_id": run_id, "blueprint_id": blueprint_id},
        }
        events = runtime_section.get("events", [])
        if not isinstance(events, list):
            raise _refused("runtime/events.jsonl must contain events")
        replacements = {old_job_id: job_id}
        if isinstance(source_run_id, str) and source_run_id:
            replacements[source_run_id] = run_id
        replacements = {old: new for old, new in replacements.items() if old != new}
        history = [_rewrite(event, replacements) for event in events if isinstance(event, dict)]
        history.append(
            {
                "type": "job_restored_from_backup",
                "source_job_id": old_job_id,
                "new_job_id": job_id,
                "run_id": run_id,
                "timestamp": self._now(),
            }
        )
        try:
            self._runtime.restore_job(job_id, dumps(manifest), payloads, history)
        except ManifestInvalidError as refused:
            raise invalid("[" + ", ".join(inspected(p) for p in refused.errors) + "]") from None
        result = {
            "job_id": job_id,
            "run_id": run_id,
            "blueprint_id": blueprint_id,
            "status": "paused",
            "source_job_id": old_job_id,
            **_present(source_run_id=source_run_id),
            "restore_provenance": provenance,
            "recovery": {"job_id": job_id, "action": "paused_for_review", "reason": RESTORE_REASON},
        }
        return {"result_json": dumps(versioned(result)), "version": 1}


def manifest_map(manifest: Manifest) -> dict[str, Any]:
    """The manifest as the core writes a loaded one back out (its Manifest.to_map)."""
    nodes = []
    for node in manifest.nodes:
        entry: dict[str, Any] = {"node_id": node.node_id, "agent_type": node.agent_type}
        entry.update(_present(type=node.type, role=node.role))
        if node.config:
            entry["config"] = dict(node.config)
        nodes.append(entry)
    document: dict[str, Any] = {
        "manifest_version": manifest.manifest_version,
        "graph_id": manifest.graph_id,
        "job_name": manifest.job_name,
        "daemon": manifest.daemon,
        "nodes": nodes,
        "edges": [
            {"from_node": e.from_node, "to_node": e.to_node, "message_type": e.message_type}
            for e in manifest.edges
        ],
        "entrypoints": list(manifest.entrypoints),
        "initial_inputs": {node: list(inputs) for node, inputs in manifest.initial_inputs.items()},
        "metadata": dict(manifest.metadata),
        "policies": dict(manifest.policies),
    }
    if manifest.requirements:
        document["requirements"] = dict(manifest.requirements)
    return document


def _refused(reason: str) -> CoreRefusal:
    """A backup refusal: the reason quoted, the code read from it."""
    text = inspected(reason)
    if "not found" in text:
        return CoreRefusal("NOT_FOUND", text)
    if "must be paused" in text:
        return CoreRefusal("FAILED_PRECONDITION", text)
    return invalid(text)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _present(**values: Any) -> dict[str, Any]:
    """The values that are there (a core's nil or empty is left out, not written null)."""
    return {key: value for key, value in values.items() if value is not None and value != ""}


def _mn_cli(job: Mapping[str, Any]) -> Mapping[str, Any]:
    manifest = job.get("manifest")
    metadata = manifest.get("metadata") if isinstance(manifest, Mapping) else None
    mn_cli = metadata.get("mn_cli") if isinstance(metadata, Mapping) else None
    return mn_cli if isinstance(mn_cli, Mapping) else {}


def _source(record: Mapping[str, Any]) -> dict[str, Any]:
    mn_cli = _mn_cli(record)
    return _present(
        job_id=record.get("job_id"),
        run_id=mn_cli.get("blueprint_run_id"),
        blueprint_id=mn_cli.get("blueprint_id"),
        graph_id=record.get("graph_id"),
        submitted_at=record.get("submitted_at"),
        status=record.get("status"),
    )


def _bundle(files: dict[str, bytes]) -> tuple[str, dict[str, bytes]]:
    """The restored bundle's manifest text and payloads, as the core writes the files
    out and reads them back."""
    for path in files:
        problem = payload_path_problem(path)
        if problem is not None:
            raise _refused(f"bundle path {inspected(path)} is unsafe: {problem}")
    if "manifest.json" not in files:
        raise _refused("bundle is missing manifest.json")
    try:
        manifest = orjson.loads(files["manifest.json"])
    except orjson.JSONDecodeError as err:
        raise _refused(f"bundle manifest.json is invalid JSON: {err}") from None
    if not isinstance(manifest, dict):
        manifest = {}
    payloads = {p[len(PAYLOADS) :]: data for p, data in files.items() if p.startswith(PAYLOADS)}
    return dumps(manifest), payloads


def _annotated(metadata: Any, blueprint_id: str, run_id: str) -> dict[str, Any]:
    """The manifest's metadata naming the blueprint and run it was restored as."""
    metadata = dict(metadata) if isinstance(metadata, Mapping) else {}
    mn_cli = metadata.get("mn_cli")
    mn_cli = dict(mn_cli) if isinstance(mn_cli, Mapping) else {}
    metadata["mn_cli"] = {**mn_cli, "blueprint_id": blueprint_id, "blueprint_run_id": run_id}
    return metadata


def _rewrite(value: Any, replacements: Mapping[str, str]) -> Any:
    """Every string equal to an old id (keys too) replaced by the new one."""
    if isinstance(value, dict):
        return {_rewrite(k, replacements): _rewrite(v, replacements) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite(item, replacements) for item in value]
    if isinstance(value, str):
        return replacements.get(value, value)
    return value


__all__ = ["Backups", "manifest_map"]
