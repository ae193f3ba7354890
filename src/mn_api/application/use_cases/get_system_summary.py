"""GetSystemSummary: the runtime's nodes, executor pools and jobs."""

from __future__ import annotations

from typing import Any

from mn_api.application.ports import RuntimePort
from mn_api.domain.views import system_summary_view


class GetSystemSummary:
    def __init__(self, runtime: RuntimePort) -> None:
        self._runtime = runtime

    async def __call__(self) -> Any:
        return system_summary_view((await self._runtime.system_summary()).value)
