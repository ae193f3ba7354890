"""The shape shared by the use cases that move a job between statuses."""

from __future__ import annotations

from abc import ABC, abstractmethod

from mn_api.application.ports import JobAck, RuntimePort


class JobControl(ABC):
    def __init__(self, runtime: RuntimePort) -> None:
        self._runtime = runtime

    async def __call__(self, job_id: str) -> JobAck:
        return await self._operate(job_id)

    @abstractmethod
    async def _operate(self, job_id: str) -> JobAck: ...
