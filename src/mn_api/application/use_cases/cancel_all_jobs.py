"""CancelAllJobs: cancel every live job, at once where the core can, else one by one.

Cores from 1.2.31 have CancelAllJobs (run there as an operation that tells each job's
outcome). Elsewhere the live jobs are listed and each is
cancelled in turn (a few at a time), and each one's outcome is told as it was: cancelled,
ended meanwhile, or refused with the reason. One listing names at most SCAN_LIMIT jobs:
the listing is made again after each round until no live job is left that the call has
not tried, or until the call's time limit. When it stops short, the outcome says why
(`stopped`: the time limit, or a full listing of jobs it had tried already) and how many
live jobs it saw and did not get to (`remaining`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from mn_api.application.ports import RuntimePort
from mn_api.domain.errors import (
    DomainError,
    InvalidTransitionError,
    JobNotFoundError,
    NotSupportedError,
    RuntimeFailureError,
    RuntimeTimeoutError,
)
from mn_api.domain.status import JobStatus

# The most live jobs one listing names, and how many are cancelled at once, job by job.
SCAN_LIMIT = 1000
AT_ONCE = 8
# How long one cancel-all may take in all, listings and cancels together.
TIME_LIMIT_SECONDS = 20.0


@dataclass(slots=True)
class CancelAllOutcome:
    """What one cancel-all did. `via` says how: the core's one call, or job by job."""

    via: str
    active: int
    cancelled: list[str] = field(default_factory=list)
    # Jobs that ended (or went) between the listing and their cancel: nothing to do.
    ended: list[str] = field(default_factory=list)
    refused: list[tuple[str, DomainError]] = field(default_factory=list)
    # Live jobs seen that the call did not get to.
    remaining: int = 0
    # Why the call stopped before it knew every live job tried: "time_limit", or
    # "listing_limit" (a full listing named only jobs tried already: more may be live).
    stopped: str | None = None

    @property
    def status(self) -> str:
        if self.active == 0:
            return "no_active_jobs"
        if not self.refused and not self.remaining and self.stopped is None:
            return "cancelled"
        return "partially_cancelled" if self.cancelled else "failed"


class CancelAllJobs:
    def __init__(
        self,
        runtime: RuntimePort,
        *,
        time_limit_seconds: float = TIME_LIMIT_SECONDS,
        scan_limit: int = SCAN_LIMIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._runtime = runtime
        self._time_limit = time_limit_seconds
        self._scan_limit = scan_limit
        self._clock = clock

    async def __call__(self) -> CancelAllOutcome:
        try:
            async with asyncio.timeout(self._time_limit):
                document = await self._runtime.cancel_all_jobs()
        except NotSupportedError:
            return await _OneByOne(self, self._clock() + self._time_limit).run()
        except TimeoutError:
            raise RuntimeTimeoutError(
                f"the runtime did not finish cancelling every job within {self._time_limit:g} "
                "s: some may be cancelled; list the live jobs to see what remains"
            ) from None
        answer = document.value if isinstance(document.value, Mapping) else {}
        results = answer.get("results")
        if isinstance(results, list):
            return _from_results(results)
        ids = answer.get("job_ids")
        cancelled = [i for i in ids if isinstance(i, str)] if isinstance(ids, list) else []
        count = answer.get("cancelled_count")
        active = count if isinstance(count, int) and count >= 0 else len(cancelled)
        return CancelAllOutcome("CancelAllJobs", active, cancelled)


# The outcomes a 1.2.31 core's cancel_all_jobs operation gives a job it cancelled (or whose
# clean-up it queued on the job's owner node).
_CANCELLED = frozenset({"cancelled", "cancellation_pending"})


def _from_results(results: list[object]) -> CancelAllOutcome:
    """The outcome told by each job's entry in a 1.2.31 core's `results`: cancelled (or
    its clean-up queued), or failed with the core's reason."""
    entries = [r for r in results if isinstance(r, Mapping) and isinstance(r.get("job_id"), str)]
    outcome = CancelAllOutcome("CancelAllJobs", len(entries))
    for entry in entries:
        job_id = entry["job_id"]
        if entry.get("status") in _CANCELLED:
            outcome.cancelled.append(job_id)
        else:
            reason = entry.get("error")
            detail = reason if isinstance(reason, str) and reason else "the core did not cancel it"
            outcome.refused.append((job_id, RuntimeFailureError(detail)))
    return outcome


class _OneByOne:
    """Rounds of listing the live jobs and cancelling those not tried yet, to the deadline."""

    def __init__(self, owner: CancelAllJobs, deadline: float) -> None:
        self._owner = owner
        self._deadline = deadline
        self._outcome = CancelAllOutcome("CancelJob", 0)
        self._tried: dict[str, int] = {}  # every live job seen, in the order seen

    async def run(self) -> CancelAllOutcome:
        outcome = self._outcome
        while True:
            live = await self._listing()
            if live is None:
                break
            fresh = [job_id for job_id in live if job_id not in self._tried]
            for job_id in fresh:
                self._tried[job_id] = len(self._tried)
            outcome.active = len(self._tried)
            if not fresh:
                if len(live) >= self._owner._scan_limit:
                    outcome.stopped = "listing_limit"
                break
            if not await self._cancel(fresh) or len(live) < self._owner._scan_limit:
                # A short listing named every live job: this round was the last one.
                break
        order = self._tried.__getitem__
        outcome.cancelled.sort(key=order)
        outcome.ended.sort(key=order)
        outcome.refused.sort(key=lambda item: order(item[0]))
        return outcome

    def _left(self) -> float:
        return self._deadline - self._owner._clock()

    async def _listing(self) -> list[str] | None:
        """The live jobs now, or None when the time limit came first (after a round)."""
        runtime = self._owner._runtime
        try:
            async with asyncio.timeout(max(self._left(), 0.001)):
                listing = (await runtime.list_jobs(self._owner._scan_limit, False)).value
        except TimeoutError:
            if not self._tried:  # nothing listed at all: the call has nothing to tell
                raise RuntimeTimeoutError(
                    "the runtime did not list the live jobs within the time limit"
                ) from None
            self._outcome.stopped = "time_limit"
            return None
        jobs = listing.get("data", []) if isinstance(listing, Mapping) else []
        return [
            job["job_id"]
            for job in jobs
            if isinstance(job, Mapping)
            and isinstance(job.get("job_id"), str)
            and job.get("status") in _LIVE
        ]

    async def _cancel(self, job_ids: list[str]) -> bool:
        """Cancel each job, a few at a time; False when the time limit came first."""
        outcome = self._outcome
        runtime = self._owner._runtime
        gate = asyncio.Semaphore(AT_ONCE)
        started: set[str] = set()

        async def cancel(job_id: str) -> None:
            async with gate:
                started.add(job_id)
                try:
                    await runtime.cancel_job(job_id)
                except (JobNotFoundError, InvalidTransitionError) as gone:
                    if isinstance(gone, InvalidTransitionError) and not _ended(gone):
                        outcome.refused.append((job_id, gone))
                    else:
                        outcome.ended.append(job_id)
                except DomainError as refusal:
                    outcome.refused.append((job_id, refusal))
                else:
                    outcome.cancelled.append(job_id)

        tasks = {job_id: asyncio.create_task(cancel(job_id)) for job_id in job_ids}
        _done, pending = await asyncio.wait(tasks.values(), timeout=max(self._left(), 0))
        if not pending:
            return True
        outcome.stopped = "time_limit"
        for job_id, task in tasks.items():
            if task.done():
                continue
            task.cancel()
            if job_id in started:  # sent, never answered: it may yet be cancelled
                outcome.refused.append((job_id, _unanswered()))
            else:
                outcome.remaining += 1
        await asyncio.gather(*pending, return_exceptions=True)
        return False


_LIVE = frozenset(status.value for status in JobStatus if not status.is_terminal)


def _unanswered() -> DomainError:
    return RuntimeTimeoutError(
        "the runtime had not answered this cancel when the time limit came: it may yet be cancelled"
    )


def _ended(refusal: InvalidTransitionError) -> bool:
    """Whether a refused cancel says the job has already ended."""
    text = refusal.detail.lower()
    return "terminal" in text or "ended" in text or "finished" in text
