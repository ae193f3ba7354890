"""JobService deployments (1.2.5 and newer): DeployJob, UpdateDeployment, GetDeployment,
ListDeployments, PromoteDeployment, RollbackDeployment, PauseDeployment, ResumeDeployment
and FailDeployment.

A deployment keeps a job running under a key, with numbered versions (strings "1", "2"...)
of the manifest. The first deploy of a key starts the job and waits until it runs; later
deploys (and updates, and rollbacks) take the path the source job calls for: a batch job
is simply run again, a long-running one is replaced blue/green when its topology changed,
has its changed agents rolled out (canary first when asked), or is left alone when nothing
changed. Each such change is recorded under a new deployment id; the key points to the
newest. docs/LATER_SERVICES.md says where each behaviour comes from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from mn_api.adapters.memory.services import deployment_policy as dp
from mn_api.adapters.memory.services._base import (
    JOB_V1,
    Answer,
    Request,
    Streaming,
    Unary,
    dumps,
    invalid,
    lenient_object,
    not_found,
    quoted,
    versioned,
)
from mn_api.adapters.memory.services.deployment_rollouts import Rollouts


class Deployments(Rollouts):
    name: ClassVar[str] = "deployments"

    def unary(self) -> Mapping[str, Unary]:
        return {
            JOB_V1 + "DeployJob": self.deploy,
            JOB_V1 + "UpdateDeployment": self.update,
            JOB_V1 + "GetDeployment": self.get,
            JOB_V1 + "ListDeployments": self.list,
            JOB_V1 + "PromoteDeployment": self.promote,
            JOB_V1 + "RollbackDeployment": self.rollback,
            JOB_V1 + "PauseDeployment": self.pause,
            JOB_V1 + "ResumeDeployment": self.resume,
            JOB_V1 + "FailDeployment": self.fail,
        }

    def streaming(self) -> Mapping[str, Streaming]:
        return {}

    # ------------------------------------------------------------------ the RPCs

    async def deploy(self, request: Request) -> Answer:
        key = request.get("deployment_key") or None
        overrides = lenient_object(request.get("update_policy_json", ""))
        manifest, payloads = self._bundle(request, key, overrides)
        return _answer(await self._deploy_or_update(manifest, payloads, key, overrides))

    async def update(self, request: Request) -> Answer:
        key = request.get("deployment_key", "")
        overrides = lenient_object(request.get("update_policy_json", ""))
        manifest, payloads = self._bundle(request, key or None, overrides)
        current = self._by_key(key)
        if current is None:
            result = await self._deploy_or_update(manifest, payloads, key or None, overrides)
        else:
            result = await self._update_existing(current, manifest, payloads, overrides)
        return _answer(result)

    async def get(self, request: Request) -> Answer:
        id_or_key = request.get("id_or_key", "")
        document = self._lookup(id_or_key)
        if document is None:
            raise not_found(quoted(f"deployment {id_or_key} was not found"))
        return _answer({**document, "versions": self._sorted_versions(document)})

    async def list(self, request: Request) -> Answer:
        query = lenient_object(request.get("query_json", ""))
        wanted = {k: query[k] for k in ("deployment_key", "status") if k in query}
        data = [
            document
            for _, document in sorted(self.documents.items())
            if all(document.get(k) == v for k, v in wanted.items())
        ]
        return _answer({"data": data})

    async def promote(self, request: Request) -> Answer:
        document = self._ref(request.get("id_or_key", ""))
        if document.get("status") != "awaiting_promotion":
            raise invalid(
                quoted(f"deployment is {document.get('status')}, expected awaiting_promotion")
            )
        key, version = document["deployment_key"], document.get("target_version")
        policy = document.get("policy") or dp.normalize({}, {})
        if document.get("mode") == "agent_level":
            if not isinstance(document.get("target_scheduler"), dict):
                raise invalid(quoted("deployment target scheduler is missing"))
            record = self._version(key, version)
            return _answer(await self._finish_rollout(document, record, policy))
        if document.get("mode") == "blue_green":
            record = self._version(key, version)
            return _answer(await self._promote_blue_green(document, record, policy))
        raise invalid(quoted(f"deployment {document['deployment_id']} cannot be promoted"))

    async def rollback(self, request: Request) -> Answer:
        document = self._ref(request.get("id_or_key", ""))
        key = document["deployment_key"]
        version, tag = request.get("version") or None, request.get("tag") or None
        records = self._sorted_versions(document)
        wanted = version or tag
        if wanted is None:
            stable = [
                r
                for r in records
                if r.get("stable") is True and r.get("version") != document.get("current_version")
            ]
            target = stable[-1] if stable else None
        elif tag is not None:
            target = next((r for r in records if r.get("tag") == wanted), None)
        else:
            target = next((r for r in records if str(r.get("version")) == wanted), None)
        if target is None:
            raise invalid(quoted(f"no rollback target found for deployment {key}"))
        fingerprint = (target.get("manifest_ref") or {}).get("bundle_fingerprint")
        if fingerprint in self._archive:
            manifest, payloads = self._archive[fingerprint]
        elif isinstance(target.get("manifest"), dict):
            manifest, payloads = target["manifest"], {}
        else:
            raise invalid(quoted("version does not include a manifest"))
        manifest = dp.apply_options(manifest, key, {})
        current = self._by_key(key)
        if current is None:
            return _answer(await self._deploy_or_update(manifest, payloads, key, {}))
        return _answer(await self._update_existing(current, manifest, payloads, {}))

    async def pause(self, request: Request) -> Answer:
        return _answer(self._set_status(request, "paused"))

    async def resume(self, request: Request) -> Answer:
        return _answer(self._set_status(request, "running"))

    async def fail(self, request: Request) -> Answer:
        return _answer(self._set_status(request, "failed"))


def _answer(document: Mapping[str, Any]) -> Answer:
    # A result that has a `version` key (the version record) keeps it: no envelope then.
    return {"result_json": dumps(versioned(document)), "version": 1}
