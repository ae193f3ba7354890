"""The deployments' records: the documents (by id, and the key's current one), the
version records of each key, the bundles a rollback redeploys, and the jobs they run."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mn_api.adapters.memory.services import deployment_policy as dp
from mn_api.adapters.memory.services._base import Request, dumps, invalid, iso_now, quoted
from mn_api.adapters.memory.services.schedules import bundle_ref, read_bundle
from mn_api.domain.errors import DomainError

if TYPE_CHECKING:
    from mn_api.adapters.memory.runtime import InMemoryRuntime

EVENTS_KEPT = 100


class DeploymentStore:
    def __init__(self, runtime: InMemoryRuntime) -> None:
        self._runtime = runtime
        self.documents: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, dict[str, dict[str, Any]]] = {}
        self._current: dict[str, str] = {}
        # Bundles by fingerprint (what a rollback redeploys), and what each job runs.
        self._archive: dict[str, tuple[dict[str, Any], dict[str, bytes]]] = {}
        self._manifests: dict[str, dict[str, Any]] = {}
        self._numbers = itertools.count(1)

    def reset(self) -> None:
        self.documents.clear()
        self.versions.clear()
        self._current.clear()
        self._archive.clear()
        self._manifests.clear()

    def _new_id(self, key: str) -> str:
        return dp.deployment_id(key, next(self._numbers))

    def _mark(
        self, job_id: str, deployment_id: str, key: str, version: str, role: str = "primary"
    ) -> None:
        """The deployment on the services of its job: a new job's (as the core's coordinator
        marks them when it starts one under a deployment), or a promoted version's."""
        registry = self._runtime.services.group("services")
        if registry is not None:
            registry.deployed(
                job_id, deployment_id=deployment_id, key=key, version=version, role=role
            )

    # ------------------------------------------------------------------ jobs

    def _bundle(
        self, request: Request, key: str | None, overrides: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, bytes]]:
        manifest, payloads = read_bundle(request)
        return dp.apply_options(manifest, key, overrides), payloads

    async def _start(self, manifest: dict[str, Any], payloads: dict[str, bytes]) -> str:
        try:
            ack = await self._runtime.submit_job(dumps(manifest), payloads)
        except DomainError as refused:
            raise invalid(quoted(str(refused))) from None
        self._manifests[ack.job_id] = manifest
        return ack.job_id

    async def _job(self, job_id: str) -> dict[str, Any]:
        """The job's record as the deployment reads it; refused when the core lost it."""
        try:
            document = (await self._runtime.get_job(job_id)).value
        except DomainError:
            raise invalid(quoted(f"job {job_id} was not found")) from None
        job = document.get("job") if isinstance(document, dict) else None
        if not isinstance(job, dict):
            raise invalid(quoted(f"job {job_id} was not found"))
        return job

    async def _wait_started(self, job_id: str, policy: Mapping[str, Any]) -> dict[str, Any]:
        """The job once it runs (or completed); as it is when the healthy deadline (at
        least a second) passes first. A job that failed or was cancelled is refused."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(policy.get("healthy_deadline_ms") or 0, 1000) / 1000
        pause = min(max(self._runtime._step_seconds, 0.005), 0.1)
        while True:
            job = await self._job(job_id)
            status = job.get("status")
            if status in ("running", "completed"):
                return job
            if status in ("failed", "cancelled"):
                result = job.get("result")
                shown = "nil" if result is None else dumps(result)
                raise invalid(quoted(f"deployment job {job_id} reached {status}: {shown}"))
            if loop.time() > deadline:
                return job
            await asyncio.sleep(pause)

    # ------------------------------------------------------------------ records

    def _record_version(
        self,
        key: str,
        version: str,
        manifest: dict[str, Any],
        payloads: dict[str, bytes],
        job: Mapping[str, Any],
        *,
        stable: bool,
    ) -> dict[str, Any]:
        reference = bundle_ref(manifest, payloads)
        self._archive[reference["bundle_fingerprint"]] = (manifest, payloads)
        manifest_ref = job.get("manifest_ref")
        return self._persist_version(
            {
                "deployment_key": key,
                "version": version,
                "job_id": job.get("job_id"),
                "manifest": manifest,
                "manifest_ref": {
                    **(manifest_ref if isinstance(manifest_ref, dict) else {}),
                    **reference,
                },
                "scheduler": _scheduler(manifest),
                "submitted_at": job.get("submitted_at") or iso_now(self._runtime._clock),
                "stable": stable,
                "tag": None,
            }
        )

    def _persist_version(self, record: dict[str, Any]) -> dict[str, Any]:
        stamp = iso_now(self._runtime._clock)
        record = {**record, "updated_at": stamp}
        record.setdefault("created_at", stamp)
        self.versions.setdefault(record["deployment_key"], {})[record["version"]] = record
        return record

    def _persist(self, document: dict[str, Any]) -> dict[str, Any]:
        stamp = iso_now(self._runtime._clock)
        document = {**document, "updated_at": stamp}
        document.setdefault("created_at", stamp)
        self.documents[document["deployment_id"]] = document
        self._current[document["deployment_key"]] = document["deployment_id"]
        return document

    def _next_version(self, key: str) -> str:
        numbers = [_number(v) for v in self.versions.get(key, {})]
        return str(max(numbers) + 1) if numbers else "1"

    def _sorted_versions(self, document: Mapping[str, Any]) -> list[dict[str, Any]]:
        records = self.versions.get(document.get("deployment_key", ""), {})
        return [records[v] for v in sorted(records, key=lambda v: (_number(v), v))]

    def _version(self, key: str, version: Any) -> dict[str, Any]:
        record = self.versions.get(key, {}).get(str(version))
        if record is None:
            raise invalid(quoted(f"deployment {key} version {version} was not found"))
        return record

    def _by_key(self, key: str) -> dict[str, Any] | None:
        deployment_id = self._current.get(key)
        return self.documents.get(deployment_id) if deployment_id is not None else None

    def _lookup(self, id_or_key: str) -> dict[str, Any] | None:
        return self.documents.get(id_or_key) or self._by_key(id_or_key)

    def _ref(self, id_or_key: str) -> dict[str, Any]:
        document = self._lookup(id_or_key)
        if document is None:
            raise invalid(quoted(f"deployment {id_or_key} was not found"))
        return document

    def _health(self, job: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "job_status": job.get("status"),
            "updated_at": job.get("updated_at") or iso_now(self._runtime._clock),
        }

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        return {**fields, "type": kind, "timestamp": iso_now(self._runtime._clock)}

    def _events(self, document: Mapping[str, Any], kind: str, **fields: Any) -> list[Any]:
        events = document.get("events")
        kept = list(events) if isinstance(events, list) else []
        return [*kept, self._event(kind, **fields)][-EVENTS_KEPT:]


def _scheduler(manifest: Mapping[str, Any]) -> dict[str, Any]:
    return {"job_type": dp.job_type(manifest)}


def _number(version: Any) -> int:
    text = str(version)
    return int(text) if text.isdigit() else 0
