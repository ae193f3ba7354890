"""ClearJobs: remove the runtime's finished jobs, and what the gateway kept about them."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from mn_api.application.cluster import JOBS_REMEMBERED, ClusterWatch
from mn_api.application.journal import HistoryJournal
from mn_api.application.ports import RuntimePort, TopologyStore
from mn_api.domain.errors import DomainError
from mn_api.domain.status import is_terminal

log = logging.getLogger("mn_api.jobs")

# The most finished jobs whose records are forgotten at once; the rest expire with their TTL.
FORGET_LIMIT = 1000


class ClearJobs:
    def __init__(
        self,
        runtime: RuntimePort,
        topologies: TopologyStore,
        journal: HistoryJournal | None = None,
        cluster: ClusterWatch | None = None,
    ) -> None:
        self._runtime = runtime
        self._topologies = topologies
        self._journal = journal
        self._cluster = cluster

    async def __call__(self) -> int:
        finished = await self._finished()
        cleared = await self._runtime.clear_jobs()
        if self._journal is not None:
            self._journal.forget(finished)
            self._journal.forget()  # every finished job: the runtime cleared them all
        if self._cluster is not None:
            await self._forget_seen(self._cluster)
        for job_id in finished:
            try:
                await self._topologies.forget(job_id)
            except DomainError:
                log.warning("the topology of cleared job %s is left to expire", job_id)
                break
        return cleared

    async def _forget_seen(self, cluster: ClusterWatch) -> None:
        """What the cluster watch saw of jobs no longer live goes with them; unable to list
        the live jobs, it stays (bounded) until it is pushed out."""
        try:
            listing = (await self._runtime.list_jobs(JOBS_REMEMBERED, False)).value
        except DomainError:
            return
        jobs = listing.get("data") if isinstance(listing, Mapping) else None
        if isinstance(jobs, list):
            cluster.forget_all_but(
                job["job_id"] for job in jobs if isinstance(job, Mapping) and "job_id" in job
            )

    async def _finished(self) -> list[str]:
        listing = (await self._runtime.list_jobs(FORGET_LIMIT, True)).value
        jobs = listing.get("data") if isinstance(listing, Mapping) else None
        return [
            job["job_id"]
            for job in jobs or ()
            if isinstance(job, Mapping)
            and isinstance(job.get("job_id"), str)
            and is_terminal(str(job.get("status")))
        ]
