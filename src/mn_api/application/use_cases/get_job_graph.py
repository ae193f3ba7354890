"""GetJobGraph: agents and the messages between them, from details, topology and events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mn_api.application.journal import HistoryJournal
from mn_api.application.ports import RuntimePort
from mn_api.application.use_cases._history import history
from mn_api.application.use_cases._topology import TopologyLookup
from mn_api.domain.graph import GraphBuilder


class GetJobGraph:
    def __init__(
        self,
        runtime: RuntimePort,
        topology: TopologyLookup,
        journal: HistoryJournal | None = None,
    ) -> None:
        self._runtime = runtime
        self._topology = topology
        self._journal = journal

    async def __call__(self, job_id: str) -> dict[str, Any]:
        details = (await self._runtime.get_job(job_id)).value
        details = details if isinstance(details, Mapping) else {}
        builder = GraphBuilder(job_id)
        builder.add_job(details)
        topology = await self._topology(job_id, details)
        if topology is not None:
            builder.add_topology(topology)
        journal = await self._journal.read(job_id) if self._journal is not None else None
        if journal is not None:
            builder.add_events(journal.fold)  # folded as the events came: O(agents + edges)
        else:
            async for record in history(self._runtime, job_id):
                builder.add_event(record.value)
        return builder.build()
