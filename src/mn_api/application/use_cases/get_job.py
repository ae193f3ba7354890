"""GetJob: the runtime's details of one job, with what clients read beside the core's fields."""

from __future__ import annotations

from typing import Any

from mn_api.application.ports import RuntimePort
from mn_api.application.use_cases._topology import TopologyLookup
from mn_api.domain.views import job_details_view


class GetJob:
    def __init__(self, runtime: RuntimePort, topology: TopologyLookup) -> None:
        self._runtime = runtime
        self._topology = topology

    async def __call__(self, job_id: str) -> Any:
        details = (await self._runtime.get_job(job_id)).value
        return job_details_view(details, await self._topology(job_id, details))
