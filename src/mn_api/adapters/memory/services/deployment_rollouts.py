"""The ways a deployment changes: the first deploy of a key, and an update by the path
its source job calls for (run again, blue/green, agent by agent, or nothing to do)."""

from __future__ import annotations

import contextlib
from typing import Any

from mn_api.adapters.memory.services import deployment_policy as dp
from mn_api.adapters.memory.services._base import Request
from mn_api.adapters.memory.services.deployment_store import DeploymentStore, _scheduler
from mn_api.domain.errors import DomainError

ACTIVE = ("pending", "running", "paused")
Result = dict[str, Any]


def _outcome(
    deployment: dict[str, Any], record: dict[str, Any], job_id: str, status: str | None = None
) -> Result:
    """A deploy's answer: the deployment, its version record, the job, and where the path
    ends in one, the status."""
    outcome: Result = {"deployment": deployment, "version": record, "job_id": job_id}
    if status is not None:
        outcome["status"] = status
    return outcome


class Rollouts(DeploymentStore):
    # ------------------------------------------------------------------ the paths

    async def _deploy_or_update(
        self,
        manifest: dict[str, Any],
        payloads: dict[str, bytes],
        key: str | None,
        overrides: dict[str, Any],
    ) -> Result:
        resolved = dp.deployment_key(manifest, key)
        current = self._by_key(resolved)
        if current is not None:
            return await self._update_existing(current, manifest, payloads, overrides)
        return await self._create(resolved, manifest, payloads, overrides)

    async def _create(
        self, key: str, manifest: dict[str, Any], payloads: dict[str, bytes], overrides: Any
    ) -> Result:
        version = self._next_version(key)
        deployment_id = self._new_id(key)
        policy = dp.normalize(manifest, overrides)
        job_id = await self._start(manifest, payloads)
        self._mark(job_id, deployment_id, key, version)
        job = await self._wait_started(job_id, policy)
        record = self._record_version(key, version, manifest, payloads, job, stable=True)
        document = self._persist(
            {
                "deployment_id": deployment_id,
                "deployment_key": key,
                "status": "successful",
                "description": "initial deployment completed",
                "strategy": policy["strategy"],
                "policy": policy,
                "current_job_id": job_id,
                "stable_job_id": job_id,
                "current_version": version,
                "stable_version": version,
                "target_version": version,
                "health": self._health(job),
                "events": [self._event("deployment_created", job_id=job_id, version=version)],
            }
        )
        return _outcome(document, record, job_id, "successful")

    async def _update_existing(
        self,
        deployment: dict[str, Any],
        manifest: dict[str, Any],
        payloads: dict[str, bytes],
        overrides: Any,
    ) -> Result:
        key = deployment["deployment_key"]
        version = self._next_version(key)
        policy = dp.normalize(manifest, overrides)
        source_id = deployment.get("stable_job_id") or deployment.get("current_job_id") or ""
        source = await self._job(source_id)
        source_manifest = self._manifests.get(source_id, {})
        if dp.job_type(source_manifest) not in dp.LONG_RUNNING:
            return await self._rerun(deployment, manifest, payloads, version, policy)
        if not dp.same_topology(source_manifest, manifest) or source.get("status") not in ACTIVE:
            return await self._blue_green(deployment, manifest, payloads, version, policy)
        changed = dp.changed_agents(source_manifest, manifest)
        if not changed:
            return await self._noop(deployment, manifest, payloads, version, policy)
        return await self._agent_level(
            deployment, source_id, manifest, payloads, version, policy, changed
        )

    async def _rerun(
        self,
        deployment: dict[str, Any],
        manifest: dict[str, Any],
        payloads: dict[str, bytes],
        version: str,
        policy: dict[str, Any],
    ) -> Result:
        """A batch job's new version: the job runs again, nothing is replaced."""
        key = deployment["deployment_key"]
        deployment_id = self._new_id(key)
        job_id = await self._start(manifest, payloads)
        self._mark(job_id, deployment_id, key, version)
        job = await self._job(job_id)
        record = self._record_version(key, version, manifest, payloads, job, stable=False)
        document = self._persist(
            {
                **deployment,
                "deployment_id": deployment_id,
                "status": "version_recorded",
                "description": "batch/sysbatch version recorded as rerun",
                "current_job_id": job_id,
                "current_version": version,
                "target_version": version,
                "policy": policy,
                "events": self._events(
                    deployment, "deployment_version_recorded", job_id=job_id, version=version
                ),
            }
        )
        return _outcome(document, record, job_id)

    async def _agent_level(
        self,
        deployment: dict[str, Any],
        source_id: str,
        manifest: dict[str, Any],
        payloads: dict[str, bytes],
        version: str,
        policy: dict[str, Any],
        changed: list[str],
    ) -> Result:
        """The changed agents of the running job are replaced in place: a canary batch
        first (waiting to be promoted unless `auto_promote`), then the rest."""
        key = deployment["deployment_key"]
        canaries = dp.canary_count(policy, len(changed))
        first = changed[:canaries] if canaries else changed[: max(policy["max_parallel"], 1)]
        remaining = [agent for agent in changed if agent not in first]
        running = self._persist(
            {
                **deployment,
                "deployment_id": self._new_id(key),
                "status": "running",
                "description": "agent-level deployment running",
                "strategy": policy["strategy"],
                "policy": policy,
                "source_job_id": source_id,
                "target_job_id": source_id,
                "current_job_id": source_id,
                "target_version": version,
                "target_manifest": manifest,
                "target_scheduler": _scheduler(manifest),
                "changed_agent_ids": changed,
                "remaining_agent_ids": remaining,
                "canary_agent_ids": first if canaries else [],
                "mode": "agent_level",
                "events": self._events(
                    deployment, "deployment_started", version=version, changed_agent_ids=changed
                ),
            }
        )
        job = await self._job(source_id)
        record = self._record_version(key, version, manifest, payloads, job, stable=False)
        if canaries and policy.get("auto_promote") is not True:
            awaiting = self._persist(
                {
                    **running,
                    "status": "awaiting_promotion",
                    "description": "canary is running and awaiting promotion",
                    "remaining_agent_ids": remaining,
                    "events": self._events(
                        running, "deployment_canary_ready", version=version, canary_agent_ids=first
                    ),
                }
            )
            return _outcome(awaiting, record, source_id, "awaiting_promotion")
        return await self._finish_rollout(running, record, policy)

    async def _finish_rollout(
        self, deployment: dict[str, Any], record: dict[str, Any], policy: dict[str, Any]
    ) -> Result:
        if isinstance(deployment.get("target_manifest"), dict):
            # Every changed agent now runs as the target manifest says.
            self._manifests[deployment["target_job_id"]] = deployment["target_manifest"]
        return await self._make_stable(
            deployment, record, policy, "agent-level deployment completed"
        )

    async def _blue_green(
        self,
        deployment: dict[str, Any],
        manifest: dict[str, Any],
        payloads: dict[str, bytes],
        version: str,
        policy: dict[str, Any],
    ) -> Result:
        """A new job beside the old one; promoted at once, or (as a canary) on request."""
        key = deployment["deployment_key"]
        candidate = dp.canary_count(policy, 1) > 0
        deployment_id = self._new_id(key)
        job_id = await self._start(manifest, payloads)
        self._mark(job_id, deployment_id, key, version, "candidate" if candidate else "primary")
        job = await self._wait_started(job_id, policy)
        record = self._record_version(key, version, manifest, payloads, job, stable=False)
        document = self._persist(
            {
                **deployment,
                "deployment_id": deployment_id,
                "status": "awaiting_promotion" if candidate else "running",
                "description": "blue/green candidate is running and awaiting promotion"
                if candidate
                else "blue/green deployment running",
                "strategy": "blue-green",
                "policy": policy,
                "source_job_id": deployment.get("stable_job_id")
                or deployment.get("current_job_id"),
                "target_job_id": job_id,
                "current_job_id": deployment.get("current_job_id") if candidate else job_id,
                "target_version": version,
                "target_manifest": manifest,
                "target_scheduler": _scheduler(manifest),
                "mode": "blue_green",
                "events": self._events(
                    deployment,
                    "deployment_started",
                    version=version,
                    target_job_id=job_id,
                    mode="blue_green",
                ),
            }
        )
        if candidate:
            return _outcome(document, record, job_id, "awaiting_promotion")
        return await self._promote_blue_green(document, record, policy)

    async def _promote_blue_green(
        self, deployment: dict[str, Any], record: dict[str, Any], policy: dict[str, Any]
    ) -> Result:
        return await self._make_stable(
            deployment,
            record,
            policy,
            "blue/green deployment promoted",
            retire=deployment.get("source_job_id"),
        )

    async def _noop(
        self,
        deployment: dict[str, Any],
        manifest: dict[str, Any],
        payloads: dict[str, bytes],
        version: str,
        policy: dict[str, Any],
    ) -> Result:
        """Nothing an agent runs changed: the version is recorded, stable, on the same job."""
        key = deployment["deployment_key"]
        job_id = deployment.get("stable_job_id") or deployment.get("current_job_id") or ""
        job = await self._job(job_id)
        record = self._record_version(key, version, manifest, payloads, job, stable=True)
        document = self._persist(
            {
                **deployment,
                "status": "successful",
                "description": "deployment contained no runtime changes",
                "current_version": version,
                "stable_version": version,
                "target_version": version,
                "policy": policy,
                "events": self._events(deployment, "deployment_noop", version=version),
            }
        )
        return _outcome(document, record, job_id)

    async def _make_stable(
        self,
        deployment: dict[str, Any],
        record: dict[str, Any],
        policy: dict[str, Any],
        description: str,
        retire: str | None = None,
    ) -> Result:
        """The target version, on the target job, becomes the stable one; `retire`, the
        job it replaces (when another), is cancelled."""
        version = deployment["target_version"]
        target = deployment["target_job_id"]
        self._mark(target, deployment["deployment_id"], deployment["deployment_key"], version)
        promoted = self._persist_version({**record, "stable": True})
        job = await self._job(target)
        if retire and retire != target:
            with contextlib.suppress(DomainError):
                await self._runtime.cancel_job(retire)
        document = self._successful(deployment, job, version, policy, description)
        return _outcome(document, promoted, target, "successful")

    def _successful(
        self,
        deployment: dict[str, Any],
        job: dict[str, Any],
        version: str,
        policy: dict[str, Any],
        description: str,
    ) -> dict[str, Any]:
        return self._persist(
            {
                **deployment,
                "status": "successful",
                "description": description,
                "current_job_id": job["job_id"],
                "stable_job_id": job["job_id"],
                "current_version": version,
                "stable_version": version,
                "target_version": version,
                "policy": policy,
                "health": self._health(job),
                "remaining_agent_ids": [],
                "events": self._events(
                    deployment, "deployment_successful", job_id=job["job_id"], version=version
                ),
            }
        )

    def _set_status(self, request: Request, status: str) -> dict[str, Any]:
        """Pause, resume or fail: no check of the current status; the reason as sent."""
        document = self._ref(request.get("id_or_key", ""))
        reason = request.get("reason", "")
        return self._persist(
            {
                **document,
                "status": status,
                "description": reason,
                "events": self._events(document, f"deployment_{status}", reason=reason),
            }
        )
