"""GetSystemSummary: the runtime's nodes, executor pools and jobs."""

from __future__ import annotations

from mn_api.application.ports import RuntimePort
from mn_api.domain.documents import JsonDocument


class GetSystemSummary:
    def __init__(self, runtime: RuntimePort) -> None:
        self._runtime = runtime

    async def __call__(self) -> JsonDocument:
        return await self._runtime.system_summary()
