"""ListJobs: the runtime's job summaries, newest first, optionally filtered."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mn_api.application.ports import RuntimePort
from mn_api.domain.documents import JsonDocument

# The most a core is asked for when the gateway filters on its side.
SCAN_LIMIT = 1000


class ListJobs:
    def __init__(self, runtime: RuntimePort) -> None:
        self._runtime = runtime

    async def __call__(
        self,
        *,
        limit: int,
        include_terminal: bool = True,
        status: str | None = None,
        graph_id: str | None = None,
    ) -> JsonDocument | Mapping[str, Any]:
        if status is None and graph_id is None:
            # Nothing to look at: the runtime's answer goes out as it came.
            return await self._runtime.list_jobs(limit, include_terminal)
        document = await self._runtime.list_jobs(max(limit, SCAN_LIMIT), include_terminal)
        jobs = document.value.get("data", []) if isinstance(document.value, Mapping) else []
        data = [
            job
            for job in jobs
            if (status is None or job.get("status") == status)
            and (graph_id is None or job.get("graph_id") == graph_id)
        ]
        return {"data": data[:limit]}
