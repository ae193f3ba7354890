"""JobService v2's runs (1.2.31): each start of a job definition is a job of the runtime
whose job id is the run id, so the first job service's GetJob, StreamEvents, pause and
cancel work on it. StartRun, ListRuns, GetRun, Pause/Resume/Cancel/DeleteRun and
SendRunInput; the definitions themselves are in definitions.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from mn_api.adapters.memory.model import _judge
from mn_api.adapters.memory.services import live_inputs
from mn_api.adapters.memory.services._base import (
    Answer,
    CoreRefusal,
    Request,
    dumps,
    internal,
    invalid,
    lenient_object,
    not_found,
    precondition,
    quoted,
    versioned,
)
from mn_api.domain import errors as e

if TYPE_CHECKING:
    from mn_api.adapters.memory.model import _Job
    from mn_api.adapters.memory.runtime import InMemoryRuntime

VERSION = 2
# A run takes the job's data read-only, or read-write (alone: no other run of the job may
# be live meanwhile).
READ_ONLY = ("read", "read_only", "ro")
BUNDLE_REF_FIELDS = ("bundle_fingerprint", "bundle_storage", "bundle_bytes", "graph_id")
BUNDLE_REF_FIELDS += ("manifest_version",)
_ENDS = {"job_completed": "completed_at", "job_failed": "completed_at"}
_ENDS["job_cancelled"] = "cancelled_at"


@dataclass(slots=True)
class RunRecord:
    """What a core writes of a run beyond its job: whose run it is and on what terms."""

    job_id: str
    data_generation: int
    job_data_access: str
    owner_node: str
    # The run's inputs: the manifest's initial inputs, the definition's configuration, the
    # start's inputs and the run's identity, merged in that order.
    inputs: dict[str, Any]
    # The idempotency keys of the live inputs it took.
    commands: set[str] = field(default_factory=set)


def answer(document: Mapping[str, Any]) -> Answer:
    """A JsonResponse: the document with `version` 2 unless it has one."""
    return {"result_json": dumps(versioned(document, VERSION)), "version": VERSION}


def term(atom: str, *values: Any) -> str:
    """`{:atom, values...}` as Elixir's `inspect` writes a tagged reason."""
    return "{:" + ", ".join([atom, *(inspected(v) for v in values)]) + "}"


def inspected(value: Any) -> str:
    """A value as Elixir's `inspect` writes it (strings quoted, tuples in braces)."""
    if isinstance(value, str):
        return quoted(value)
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(inspected(v) for v in value) + "]"
    if isinstance(value, tuple):
        return "{" + ", ".join(inspected(v) for v in value) + "}"
    if isinstance(value, dict):
        pairs = (f"{inspected(k)} => {inspected(v)}" for k, v in value.items())
        return "%{" + ", ".join(pairs) + "}"
    return str(value)


def deep_merge(left: Any, right: Any) -> Any:
    """Objects merged key by key, all the way down; anything else: the right side."""
    if isinstance(left, dict) and isinstance(right, dict):
        merged = dict(left)
        for key, value in right.items():
            merged[key] = deep_merge(merged[key], value) if key in merged else value
        return merged
    return right


def data_access(storage: Mapping[str, Any]) -> str:
    """A definition's runs read its data only when every declared resource is read-only
    (so a definition that declares none runs read-only)."""
    resources = storage.get("resources")
    declared = resources if isinstance(resources, list) else []
    if all(isinstance(r, Mapping) and r.get("access", "read_write") in READ_ONLY for r in declared):
        return "read"
    return "read_write"


def compact(reference: Any) -> Any:
    if isinstance(reference, Mapping):
        return {key: reference[key] for key in BUNDLE_REF_FIELDS if key in reference}
    return reference


class DefinitionRuns:
    """The run half of the jobs_v2 group (definitions.py holds the state it reads)."""

    _runtime: InMemoryRuntime
    definitions: dict[str, dict[str, Any]]
    bundles: dict[str, tuple[str, dict[str, bytes]]]
    runs: dict[str, RunRecord]

    def _definition(self, job_id: str) -> dict[str, Any]:
        definition = self.definitions.get(job_id)
        if definition is None:
            raise not_found(f"job {job_id} was not found")
        return definition

    def _live_runs(self, definition: Mapping[str, Any]) -> list[str]:
        """The definition's runs that have not ended."""
        runtime = self._runtime
        return [
            run_id
            for run_id in definition["run_ids"]
            if runtime.has_job(run_id) and not runtime.job_record(run_id).status.is_terminal
        ]

    def _no_live_runs(self, definition: Mapping[str, Any]) -> None:
        live = self._live_runs(definition)
        if live:
            raise precondition(term("active_runs", live))

    async def start_run(self, request: Request) -> Answer:
        job_id = request.get("job_id", "")
        inputs = lenient_object(request.get("inputs_json", ""))
        run_id = await self.start(job_id, request.get("run_id", "") or None, inputs)
        return answer({"job_id": job_id, "run_id": run_id, "status": "pending"})

    async def start(self, job_id: str, run_id: str | None, inputs: dict[str, Any]) -> str:
        """Start a run of the definition (StartRun, and each dispatch of its schedules):
        its id, or CoreRefusal."""
        definition = self._definition(job_id)
        if definition["status"] != "active":
            raise internal("job_not_active")
        runtime = self._runtime
        if definition["owner_node"] not in runtime.live_nodes:
            raise CoreRefusal(
                "UNAVAILABLE", term("job_data_owner_unavailable", definition["owner_node"])
            )
        access = data_access(definition["storage"])
        busy = [
            live
            for live in self._live_runs(definition)
            if access == "read_write" or self.runs[live].job_data_access == "read_write"
        ]
        if busy:
            raise internal(term("job_data_busy", busy))
        if run_id is not None and runtime.has_job(run_id):
            raise internal("run_already_exists")
        manifest_json, payloads = self.bundles[job_id]
        if run_id is None:
            run_id = runtime.unused_job_id(definition["graph_id"])
        merged: Any = dict(_judge(manifest_json).initial_inputs)
        for layer in (
            definition["resolved_configuration"],
            inputs,
            {"identity": {"job_id": job_id, "run_id": run_id}},
        ):
            merged = deep_merge(merged, layer)
        manifest = self._run_manifest(
            orjson.loads(manifest_json), definition, run_id, access, merged
        )
        try:
            await runtime.submit_job(manifest, payloads, job_id=run_id)
        except e.RequirementsNotMetError as refused:
            raise precondition(refused.detail) from None
        except e.AlreadyExistsError:
            raise internal("run_already_exists") from None
        self.runs[run_id] = RunRecord(
            job_id, definition["data_generation"], access, definition["owner_node"], merged
        )
        if run_id not in definition["run_ids"]:
            definition["run_ids"].append(run_id)
        definition["latest_run_id"] = run_id
        return run_id

    def _run_manifest(
        self,
        manifest: dict[str, Any],
        definition: Mapping[str, Any],
        run_id: str,
        access: str,
        inputs: Mapping[str, Any],
    ) -> str:
        """The definition's manifest as the run executes it: the run named in its metadata,
        and those of the merged inputs addressed to its nodes as their initial inputs."""
        nodes = manifest.get("nodes") if isinstance(manifest.get("nodes"), list) else []
        node_ids = {n.get("node_id") for n in nodes if isinstance(n, dict)}
        metadata = manifest.get("metadata") if isinstance(manifest.get("metadata"), dict) else {}
        manifest["metadata"] = {
            **metadata,
            "job_id": definition["job_id"],
            "run_id": run_id,
            "job_data_access": access,
            "data_generation": definition["data_generation"],
        }
        manifest["initial_inputs"] = {k: v for k, v in inputs.items() if k in node_ids}
        return dumps(manifest)

    async def list_runs(self, request: Request) -> Answer:
        job_id = request.get("job_id", "")
        definition = self._definition(job_id)
        runtime = self._runtime
        runs = [
            self.run_document(runtime.job_record(run_id))
            for run_id in definition["run_ids"]
            if runtime.has_job(run_id)
        ]
        return answer({"job_id": job_id, "data": runs})

    async def get_run(self, request: Request) -> Answer:
        run_id = request.get("run_id", "")
        if not self._runtime.has_job(run_id):
            raise not_found(f"job {run_id} was not found")
        return answer(self.run_document(self._runtime.job_record(run_id)))

    def run_document(self, job: _Job) -> dict[str, Any]:
        """A run as GetRun and ListRuns project it (any job of the runtime projects so;
        one that is no run names no definition)."""
        document: dict[str, Any] = {
            "graph_id": job.manifest.graph_id,
            "job_name": job.manifest.job_name,
            "status": job.status.value,
            "submitted_at": job.submitted_at,
            "updated_at": job.updated_at,
        }
        run = self.runs.get(job.job_id)
        if run is not None:
            document.update(
                data_generation=run.data_generation,
                job_data_access=run.job_data_access,
                owner_node=run.owner_node,
            )
        document.update(_moments(job))
        document["manifest_ref"] = {
            "graph_id": job.manifest.graph_id,
            "manifest_version": job.manifest.manifest_version,
        }
        if run is not None:
            document["job_id"] = run.job_id
        document["run_id"] = job.job_id
        document["attempt_id"] = f"{job.job_id}:1"
        return document

    async def pause_run(self, request: Request) -> Answer:
        return await self._control(request, "pause")

    async def resume_run(self, request: Request) -> Answer:
        return await self._control(request, "resume")

    async def cancel_run(self, request: Request) -> Answer:
        return await self._control(request, "cancel")

    async def _control(self, request: Request, action: str) -> Answer:
        run_id = request.get("run_id", "")
        runtime = self._runtime
        call = {"pause": runtime.pause_job, "resume": runtime.resume_job}.get(
            action, runtime.cancel_job
        )
        try:
            ack = await call(run_id)
        except e.JobNotFoundError:
            if action == "cancel":
                raise not_found(f"job {run_id} was not found") from None
            raise not_found(f"job {run_id} is not running in the connected cluster") from None
        except e.CoordinatorGoneError:
            raise not_found(f"job {run_id} is not running in the connected cluster") from None
        except e.InvalidTransitionError as refused:
            raise _refusal_by_text(refused.detail) from None
        return answer({"run_id": run_id, "status": ack.status})

    async def delete_run(self, request: Request) -> Answer:
        run_id = request.get("run_id", "")
        if not request.get("confirmed", False):
            raise internal("confirmation_required")
        runtime = self._runtime
        if not runtime.has_job(run_id):
            raise not_found(f"job {run_id} was not found")
        try:
            runtime.forget_job(run_id)
        except e.InvalidTransitionError as refused:
            raise internal(refused.detail) from None
        run = self.runs.pop(run_id, None)
        definition = self.definitions.get(run.job_id) if run is not None else None
        if definition is not None and run_id in definition["run_ids"]:
            definition["run_ids"].remove(run_id)
            if definition["run_ids"]:
                definition["latest_run_id"] = definition["run_ids"][-1]
            else:
                definition.pop("latest_run_id", None)
        return answer({"run_id": run_id, "status": "deleted"})

    async def send_run_input(self, request: Request) -> Answer:
        run_id = request.get("run_id", "")
        input_id = request.get("input_id", "")
        key = request.get("idempotency_key", "")
        text = request.get("payload_json", "")
        try:
            if len(text.encode()) > live_inputs.MAX_PAYLOAD_BYTES:
                raise live_inputs.LiveInputError("payload exceeds the live-input size limit")
            payload = _payload(text)
            live_inputs.check_request(run_id, input_id, key)
            runtime = self._runtime
            if not runtime.has_job(run_id):
                raise not_found(f"job {run_id} was not found")
            job = runtime.job_record(run_id)
            if job.status.value not in live_inputs.ACTIVE_STATUSES:
                raise precondition(term("inactive_run", job.status.value))
            run = self.runs.get(run_id)
            manifest = self._manifest_of(run)
            declared = live_inputs.declaration(manifest, input_id)
            payload = live_inputs.checked_payload(payload, declared.get("schema", {}))
        except live_inputs.LiveInputError as refused:
            raise invalid(term("invalid_live_input", str(refused))) from None
        if run is not None and key not in run.commands:
            # One delivery per idempotency key: the key is the message's id.
            run.commands.add(key)
            runtime.send_message(
                run_id,
                declared["entrypoint"],
                declared["message_type"],
                payload,
                message_id=key,
                message_class="command",
            )
        return answer(
            {"run_id": run_id, "input_id": input_id, "command_id": key, "status": "accepted"}
        )

    def _manifest_of(self, run: RunRecord | None) -> Mapping[str, Any]:
        """The manifest a run was started from (a job that is no run declares no inputs)."""
        bundle = self.bundles.get(run.job_id) if run is not None else None
        return orjson.loads(bundle[0]) if bundle is not None else {}


def _payload(text: str) -> Any:
    try:
        value = orjson.loads(text) if text.strip() else None
    except orjson.JSONDecodeError:
        raise live_inputs.LiveInputError("payload must be valid JSON") from None
    if not isinstance(value, dict):
        raise live_inputs.LiveInputError("payload must be a JSON object")
    return value


def _refusal_by_text(text: str) -> CoreRefusal:
    """A refused control call, coded by its text as 1.2.31 codes them."""
    lowered = text.lower()
    if "not running" in lowered or "not found" in lowered:
        return not_found(text)
    if "not paused" in lowered or "terminal state" in lowered:
        return precondition(text)
    return internal(text)


def _moments(job: _Job) -> dict[str, str]:
    """When the run started (its job_running event) and ended (its last event)."""
    moments: dict[str, str] = {}
    for raw in job.events[:8]:
        if b'"job_running"' in raw:
            moments["started_at"] = orjson.loads(raw)["timestamp"]
            break
    if job.status.is_terminal and job.events:
        last = orjson.loads(job.events[-1])
        end = _ENDS.get(last.get("type", ""))
        if end is not None:
            moments[end] = last["timestamp"]
    return moments
