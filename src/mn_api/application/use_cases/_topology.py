"""Finding a job's declared nodes and edges, shared by the routes that show its agents."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from mn_api.application.ports import ManifestSource, TopologyStore
from mn_api.domain.errors import SharedStateUnavailableError

log = logging.getLogger("mn_api.jobs")

# Topologies never change once a job is submitted, so recent ones are kept in process;
# that a job has none is remembered for a short while (another replica may keep it soon).
CACHED_TOPOLOGIES = 1024
UNKNOWN_FOR_SECONDS = 10.0


class TopologyLookup:
    """The runtime's own topology if it gives one, else what the gateway kept when it
    submitted the job, else the manifest file the core names (when readable here)."""

    def __init__(
        self,
        topologies: TopologyStore,
        manifests: ManifestSource,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._topologies = topologies
        self._manifests = manifests
        self._clock = clock
        # A topology, or the time until which the job is taken to have none.
        self._recent: OrderedDict[str, Mapping[str, Any] | float] = OrderedDict()

    async def __call__(self, job_id: str, details: Any) -> Mapping[str, Any] | None:
        # The dict checks first: that is what parsed JSON gives, and far cheaper than the ABC's.
        job = details.get("job") if isinstance(details, dict | Mapping) else None
        job = job if isinstance(job, dict | Mapping) else {}
        topology = job.get("topology")
        if topology is not None and isinstance(topology, dict | Mapping):
            return topology
        cached = self._recent.get(job_id)
        if cached is not None:
            if not isinstance(cached, float):
                self._recent.move_to_end(job_id)
                return cached
            if cached > self._clock():
                return None
        found = await self._kept(job_id)
        if found is None:
            manifest_ref = job.get("manifest_ref")
            path = manifest_ref.get("manifest_path") if isinstance(manifest_ref, Mapping) else None
            if isinstance(path, str) and path:
                found = await self._manifests.read(path)
        self._recent[job_id] = found if found is not None else self._clock() + UNKNOWN_FOR_SECONDS
        self._recent.move_to_end(job_id)
        if len(self._recent) > CACHED_TOPOLOGIES:
            self._recent.popitem(last=False)
        return found

    async def _kept(self, job_id: str) -> Mapping[str, Any] | None:
        try:
            return await self._topologies.load(job_id)
        except SharedStateUnavailableError:
            log.warning("the topology of job %s could not be read", job_id)
            return None
