"""ClearJobs: remove the runtime's finished jobs."""

from __future__ import annotations

from mn_api.application.ports import RuntimePort


class ClearJobs:
    def __init__(self, runtime: RuntimePort) -> None:
        self._runtime = runtime

    async def __call__(self) -> int:
        return await self._runtime.clear_jobs()
