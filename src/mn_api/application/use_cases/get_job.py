"""GetJob: the runtime's details of one job, with what clients read beside the core's fields:
the node that coordinates it, and whether it is orphaned."""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from mn_api.application.cluster import ClusterWatch
from mn_api.application.journal import HistoryJournal
from mn_api.application.ports import RuntimePort
from mn_api.application.use_cases._history import history
from mn_api.application.use_cases._topology import TopologyLookup
from mn_api.domain.cluster import (
    COORDINATOR_EVENTS,
    Membership,
    coordinator_in,
    coordinator_of,
    orphan_report,
)
from mn_api.domain.errors import DomainError, RuntimeProtocolError
from mn_api.domain.status import LIVE_STATUSES
from mn_api.domain.views import RECENT_EVENTS, included, job_details_view


class GetJob:
    def __init__(
        self,
        runtime: RuntimePort,
        topology: TopologyLookup,
        journal: HistoryJournal | None = None,
        cluster: ClusterWatch | None = None,
    ) -> None:
        self._runtime = runtime
        self._topology = topology
        self._journal = journal
        self._cluster = cluster

    async def __call__(self, job_id: str, include: str = "full") -> dict[str, Any]:
        """The job's details: `job`, `summary`, `agents`, `recent_events` and `sandboxes`
        as far as the core sends them (`include`: `summary` or `compact` for less)."""
        details = (await self._runtime.get_job(job_id)).value
        if not isinstance(details, dict):
            raise RuntimeProtocolError("the runtime answered job details that are no object")
        view = job_details_view(details, await self._topology(job_id, details))
        if include == "full":
            await self._recent_events(job_id, view)
        if isinstance(view.get("job"), dict):
            await self._placement(job_id, view)
        shown: dict[str, Any] = included(view, include)
        return shown

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

    async def _placement(self, job_id: str, view: dict[str, Any]) -> None:
        """The job's coordinating node (`coordinator_node`), and `orphaned` when no
        coordinator runs the live job any more (see domain.cluster.orphan_report)."""
        job = view["job"]
        cluster = self._cluster
        if cluster is None:
            report = orphan_report(view, coordinator=None, membership=Membership())
            if report is not None:
                job.setdefault("orphaned", report)
            return
        # "" is a recovery that named no node: known, and not to be looked for again.
        coordinator = cluster.coordinator(job_id)
        if coordinator is None:
            coordinator = coordinator_of(view.get("recent_events") or ())
        live = job.get("status") in LIVE_STATUSES
        if live:
            with suppress(DomainError):  # else what was seen last still holds
                await cluster.summary()  # membership as of a moment ago
            if coordinator is None or cluster.membership.is_lost(coordinator):
                # Read what the history says now: the events read name the coordinator,
                # a newer one if the job was recovered elsewhere.
                await self._read_history(job_id)
                newer = cluster.coordinator(job_id)
                coordinator = coordinator if newer is None else newer
        if coordinator is not None:
            cluster.remember_coordinator(job_id, coordinator)
        if coordinator:
            job.setdefault("coordinator_node", coordinator)
        if live:
            report = orphan_report(
                view,
                coordinator=coordinator,
                membership=cluster.membership,
                refused_at=cluster.refused_at(job_id),
            )
            if report is not None:
                job.setdefault("orphaned", report)

    async def _read_history(self, job_id: str) -> None:
        """Bring what is known of the job's history up to date: the events read on the way
        tell the cluster watch the coordinator; a journal that read them long ago is asked."""
        assert self._cluster is not None
        try:
            kept = await self._journal.read(job_id, ended=False) if self._journal else None
            if kept is None:
                async for _record in history(self._runtime, job_id):
                    pass
                return
        except DomainError:
            return  # the coordinator stays unknown: nothing is said of it
        for kind in COORDINATOR_EVENTS[::-1]:  # the newest recovery, else the scheduling
            positions = [p for p in kept.by_type.get(kind, ()) if p >= kept.base]
            if positions:
                node = coordinator_in(kept.record(positions[-1]).value)
                if node is not None:
                    self._cluster.remember_coordinator(job_id, node, positions[-1])
                    return
