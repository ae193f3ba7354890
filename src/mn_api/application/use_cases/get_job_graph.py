"""GetJobGraph: agents and the messages between them, from details, topology and events."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from mn_api.application.ports import ManifestSource, RuntimePort, TopologyStore
from mn_api.application.use_cases._history import history
from mn_api.domain.errors import SharedStateUnavailableError
from mn_api.domain.graph import GraphBuilder

log = logging.getLogger("mn_api.jobs")


class GetJobGraph:
    def __init__(
        self, runtime: RuntimePort, manifests: ManifestSource, topologies: TopologyStore
    ) -> None:
        self._runtime = runtime
        self._manifests = manifests
        self._topologies = topologies

    async def __call__(self, job_id: str) -> dict[str, Any]:
        details = (await self._runtime.get_job(job_id)).value
        details = details if isinstance(details, Mapping) else {}
        builder = GraphBuilder(job_id)
        builder.add_job(details)
        topology = await self._topology(job_id, details)
        if topology is not None:
            builder.add_topology(topology)
        async for record in history(self._runtime, job_id):
            builder.add_event(record.value)
        return builder.build()

    async def _topology(self, job_id: str, details: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The runtime's own topology if it gives one, else what the gateway kept when it
        submitted the job, else the manifest file the core names (when readable here)."""
        job = details.get("job")
        job = job if isinstance(job, Mapping) else {}
        topology = job.get("topology")
        if isinstance(topology, Mapping):
            return topology
        try:
            kept = await self._topologies.load(job_id)
        except SharedStateUnavailableError:
            log.warning("the topology of job %s could not be read", job_id)
            kept = None
        if kept is not None:
            return kept
        manifest_ref = job.get("manifest_ref")
        path = manifest_ref.get("manifest_path") if isinstance(manifest_ref, Mapping) else None
        if isinstance(path, str) and path:
            return await self._manifests.read(path)
        return None
