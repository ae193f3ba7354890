"""PauseJob: ask the runtime to pause a job; refused when the job's status forbids it."""

from __future__ import annotations

from mn_api.application.ports import JobAck
from mn_api.application.use_cases._control import JobControl


class PauseJob(JobControl):
    async def _operate(self, job_id: str) -> JobAck:
        return await self._runtime.pause_job(job_id)
