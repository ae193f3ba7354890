"""CancelAllJobs: cancel every live job, at once where the core can, else one by one.

Cores from 1.2.31 have CancelAllJobs. Elsewhere the live jobs are listed and each is
cancelled in turn (a few at a time), and each one's outcome is told as it was: cancelled,
ended meanwhile, or refused with the reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

from mn_api.application.ports import RuntimePort
from mn_api.domain.errors import (
    DomainError,
    InvalidTransitionError,
    JobNotFoundError,
    NotSupportedError,
)
from mn_api.domain.status import JobStatus

# The most live jobs one call looks at, and cancels at once, when it goes job by job.
SCAN_LIMIT = 1000
AT_ONCE = 8


@dataclass(frozen=True, slots=True)
class CancelAllOutcome:
    """What one cancel-all did. `via` says how: the core's one call, or job by job."""

    via: str
    active: int
    cancelled: list[str] = field(default_factory=list)
    # Jobs that ended (or went) between the listing and their cancel: nothing to do.
    ended: list[str] = field(default_factory=list)
    refused: list[tuple[str, DomainError]] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.active == 0:
            return "no_active_jobs"
        if not self.refused:
            return "cancelled"
        return "partially_cancelled" if self.cancelled else "failed"


class CancelAllJobs:
    def __init__(self, runtime: RuntimePort) -> None:
        self._runtime = runtime

    async def __call__(self) -> CancelAllOutcome:
        try:
            document = await self._runtime.cancel_all_jobs()
        except NotSupportedError:
            return await self._one_by_one()
        answer = document.value if isinstance(document.value, Mapping) else {}
        ids = answer.get("job_ids")
        cancelled = [i for i in ids if isinstance(i, str)] if isinstance(ids, list) else []
        count = answer.get("cancelled_count")
        active = count if isinstance(count, int) and count >= 0 else len(cancelled)
        return CancelAllOutcome("CancelAllJobs", active, cancelled)

    async def _one_by_one(self) -> CancelAllOutcome:
        listing = (await self._runtime.list_jobs(SCAN_LIMIT, False)).value
        jobs = listing.get("data", []) if isinstance(listing, Mapping) else []
        live = [
            job["job_id"]
            for job in jobs
            if isinstance(job, Mapping)
            and isinstance(job.get("job_id"), str)
            and job.get("status") in _LIVE
        ]
        outcome = CancelAllOutcome("CancelJob", len(live))
        gate = asyncio.Semaphore(AT_ONCE)

        async def cancel(job_id: str) -> None:
            async with gate:
                try:
                    await self._runtime.cancel_job(job_id)
                except (JobNotFoundError, InvalidTransitionError) as gone:
                    if isinstance(gone, InvalidTransitionError) and not _ended(gone):
                        outcome.refused.append((job_id, gone))
                    else:
                        outcome.ended.append(job_id)
                except DomainError as refusal:
                    outcome.refused.append((job_id, refusal))
                else:
                    outcome.cancelled.append(job_id)

        await asyncio.gather(*(cancel(job_id) for job_id in live))
        order = {job_id: n for n, job_id in enumerate(live)}
        outcome.cancelled.sort(key=order.__getitem__)
        outcome.ended.sort(key=order.__getitem__)
        outcome.refused.sort(key=lambda item: order[item[0]])
        return outcome


_LIVE = frozenset(status.value for status in JobStatus if not status.is_terminal)


def _ended(refusal: InvalidTransitionError) -> bool:
    """Whether a refused cancel says the job has already ended."""
    text = refusal.detail.lower()
    return "terminal" in text or "ended" in text or "finished" in text
