"""GetJobGraph: agents and the messages between them, from details, topology and events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mn_api.application.ports import ManifestSource, RuntimePort
from mn_api.application.use_cases._history import history
from mn_api.domain.graph import GraphBuilder


class GetJobGraph:
    def __init__(self, runtime: RuntimePort, manifests: ManifestSource) -> None:
        self._runtime = runtime
        self._manifests = manifests

    async def __call__(self, job_id: str) -> dict[str, Any]:
        details = (await self._runtime.get_job(job_id)).value
        details = details if isinstance(details, Mapping) else {}
        builder = GraphBuilder(job_id)
        builder.add_job(details)
        topology = await self._topology(details)
        if topology is not None:
            builder.add_topology(topology)
        async for record in history(self._runtime, job_id):
            builder.add_event(record.value)
        return builder.build()

    async def _topology(self, details: Mapping[str, Any]) -> Mapping[str, Any] | None:
        job = details.get("job")
        job = job if isinstance(job, Mapping) else {}
        topology = job.get("topology")
        if isinstance(topology, Mapping):
            return topology
        manifest_ref = job.get("manifest_ref")
        path = manifest_ref.get("manifest_path") if isinstance(manifest_ref, Mapping) else None
        if isinstance(path, str) and path:
            return await self._manifests.read(path)
        return None
