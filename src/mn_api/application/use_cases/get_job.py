"""GetJob: the runtime's details of one job."""

from __future__ import annotations

from mn_api.application.ports import RuntimePort
from mn_api.domain.documents import JsonDocument


class GetJob:
    def __init__(self, runtime: RuntimePort) -> None:
        self._runtime = runtime

    async def __call__(self, job_id: str) -> JsonDocument:
        return await self._runtime.get_job(job_id)
