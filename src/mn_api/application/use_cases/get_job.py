"""GetJob: the runtime's details of one job, with what clients read beside the core's fields."""

from __future__ import annotations

from typing import Any

from mn_api.application.journal import HistoryJournal
from mn_api.application.ports import RuntimePort
from mn_api.application.use_cases._topology import TopologyLookup
from mn_api.domain.views import RECENT_EVENTS, included, job_details_view


class GetJob:
    def __init__(
        self,
        runtime: RuntimePort,
        topology: TopologyLookup,
        journal: HistoryJournal | None = None,
    ) -> None:
        self._runtime = runtime
        self._topology = topology
        self._journal = journal

    async def __call__(self, job_id: str, include: str = "full") -> Any:
        details = (await self._runtime.get_job(job_id)).value
        view = job_details_view(details, await self._topology(job_id, details))
        if include == "full":
            await self._recent_events(job_id, view)
        return included(view, include)

    async def _recent_events(self, job_id: str, view: Any) -> None:
        """Cores that leave `recent_events` empty (1.2.31) get it filled from the job's
        history, as the others send it: the newest 25, newest first."""
        if self._journal is None or not isinstance(view, dict):
            return
        if view.get("recent_events") != []:
            return
        job = view.get("job")
        status = job.get("status") if isinstance(job, dict) else None
        kept = await self._journal.read(
            job_id, ended=status in ("completed", "failed", "cancelled")
        )
        if kept is None or kept.end == 0:
            return
        view["recent_events"] = kept.newest(RECENT_EVENTS)
