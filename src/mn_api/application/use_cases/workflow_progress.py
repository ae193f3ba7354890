"""WorkflowProgress: a job's progress as one document, and followed live as snapshots.

Built from the job's whole history: with the history journal, from the progress it
folds as events arrive (a snapshot costs O(agents), and every viewer of a job shares the
one core stream that feeds it, and each snapshot that is built); without it (or for a
history too big to keep), each viewer folds the history it reads from the runtime.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import aclosing, suppress
from typing import Any

from mn_api.application.journal import HistoryJournal, job_status
from mn_api.application.ports import RuntimePort
from mn_api.application.use_cases._history import history
from mn_api.application.use_cases._topology import TopologyLookup
from mn_api.domain.events import EventRecord, Heartbeat, RuntimeState, iso_timestamp
from mn_api.domain.progress import ProgressFold, snapshot
from mn_api.domain.status import is_terminal

# Snapshots kept for the viewers of the same jobs (one per job, as of its last change).
KEPT_SNAPSHOTS = 256
# How long a viewer without the journal waits for the history before its first snapshot.
FIRST_READ_SECONDS = 1.0


class WorkflowProgress:
    def __init__(
        self,
        runtime: RuntimePort,
        topology: TopologyLookup,
        journal: HistoryJournal | None = None,
        *,
        heartbeat_seconds: float = 5.0,
        min_interval_seconds: float = 0.25,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._runtime = runtime
        self._topology = topology
        self._journal = journal
        self._heartbeat = heartbeat_seconds
        self._interval = min_interval_seconds
        self._clock = clock
        self._kept: OrderedDict[str, tuple[tuple[int, str], dict[str, Any]]] = OrderedDict()

    async def __call__(self, job_id: str) -> dict[str, Any]:
        """The job's progress now; JobNotFoundError for an unknown job."""
        job = await _Job.look_up(self, job_id)
        fold = await self._whole_fold(job_id, job.ended)
        return self._snapshot(job, fold, job.status)

    async def follow(self, job_id: str) -> AsyncIterator[dict[str, Any] | Heartbeat]:
        """A snapshot now, another after each change (at most every `min_interval`), a
        Heartbeat when quiet, and a last snapshot once the job has ended. Fails before the
        first snapshot (JobNotFoundError, a runtime down) so that callers can answer."""
        job = await _Job.look_up(self, job_id)
        kept = None
        if self._journal is not None:
            kept = await self._journal.read(job_id, ended=job.ended, watching=True)
        feed: AsyncIterator[EventRecord | Heartbeat] | None = None
        if kept is not None and self._journal is not None:
            fold, shared = kept.progress, True
            if not job.ended:
                feed = await self._journal.watch(job_id, after=kept.end - 1, ended=False)
        else:
            fold, shared = ProgressFold(), False
            feed = self._runtime.stream_events(
                job_id, follow=not job.ended, heartbeat_seconds=self._heartbeat
            )
            if job.ended:  # the whole history, then the end
                async with aclosing(feed):
                    async for item in feed:
                        if isinstance(item, EventRecord):
                            fold.add(item.value)
                feed = None
        return self._follow(job, fold, shared, feed)

    async def _follow(
        self,
        job: _Job,
        fold: ProgressFold,
        shared: bool,
        feed: AsyncIterator[EventRecord | Heartbeat] | None,
    ) -> AsyncIterator[dict[str, Any] | Heartbeat]:
        if feed is None:
            yield self._snapshot(job, fold, job.status, shared=shared)
            return
        changed = asyncio.Event()
        states: list[RuntimeState] = []
        pump = asyncio.create_task(_pump(feed, None if shared else fold, changed, states))
        try:
            if not shared:  # the history is read first: the first snapshot shows it
                with suppress(TimeoutError):
                    async with asyncio.timeout(FIRST_READ_SECONDS):
                        await _either(changed, pump)
                        while not pump.done() and await _more_within(changed, 0.05):
                            pass
                changed.clear()
            last = self._snapshot(job, fold, None, shared=shared)
            yield last
            while not pump.done() or changed.is_set():
                try:
                    async with asyncio.timeout(self._heartbeat):
                        await _either(changed, pump)
                except TimeoutError:
                    yield Heartbeat()
                    continue
                if changed.is_set():
                    changed.clear()
                    while states:
                        yield states.pop(0)
                    now = self._snapshot(job, fold, None, shared=shared)
                    if (now["sequence"], now["status"]) == (last["sequence"], last["status"]):
                        continue  # events the last snapshot had already taken in
                    last = now
                    yield last
                    await asyncio.sleep(self._interval)  # what comes meanwhile: one snapshot
            pump.result()  # a failure of the feed is the stream's
            status = fold.status if is_terminal(fold.status or "") else None
            status = status or await job_status(self._runtime, job.job_id)
            final = self._snapshot(job, fold, status, shared=shared)
            if (final["sequence"], final["status"]) != (last["sequence"], last["status"]):
                yield final
        finally:
            pump.cancel()
            with suppress(asyncio.CancelledError):
                await pump

    async def _whole_fold(self, job_id: str, ended: bool) -> ProgressFold:
        if self._journal is not None:
            kept = await self._journal.read(job_id, ended=ended)
            if kept is not None:
                return kept.progress
        fold = ProgressFold()
        async for record in history(self._runtime, job_id):
            fold.add(record.value)
        return fold

    def _snapshot(
        self, job: _Job, fold: ProgressFold, status: str | None, *, shared: bool = True
    ) -> dict[str, Any]:
        status = status or fold.status or job.status
        key = (fold.events, status)
        if shared:
            kept = self._kept.get(job.job_id)
            if kept is not None and kept[0] == key:
                self._kept.move_to_end(job.job_id)
                return kept[1]
        document = snapshot(
            fold,
            job.job_id,
            manifest=job.manifest,
            status=status,
            generated_at=iso_timestamp(self._clock()),
            name=job.name,
            placements=job.placements,
        )
        if shared:
            self._kept[job.job_id] = (key, document)
            self._kept.move_to_end(job.job_id)
            while len(self._kept) > KEPT_SNAPSHOTS:
                self._kept.popitem(last=False)
        return document


class _Job:
    """What the runtime's details say of a job, read once per request."""

    __slots__ = ("ended", "job_id", "manifest", "name", "placements", "status")

    def __init__(
        self,
        job_id: str,
        status: str,
        name: str | None,
        manifest: Any,
        placements: dict[str, str] | None = None,
    ) -> None:
        self.job_id = job_id
        # The node each agent runs on (the core's `assigned_node`), when it says.
        self.placements = placements or {}
        self.status = status
        self.ended = is_terminal(status)
        self.name = name
        self.manifest = manifest

    @classmethod
    async def look_up(cls, progress: WorkflowProgress, job_id: str) -> _Job:
        details = (await progress._runtime.get_job(job_id)).value
        details = details if isinstance(details, Mapping) else {}
        job = details.get("job")
        job = job if isinstance(job, Mapping) else {}
        status = job.get("status") if isinstance(job.get("status"), str) else "pending"
        name = job.get("job_name") or job.get("graph_id")
        manifest = await progress._topology(job_id, details)
        placements = {
            agent["agent_id"]: agent["assigned_node"]
            for agent in details.get("agents") or ()
            if isinstance(agent, Mapping)
            and isinstance(agent.get("agent_id"), str)
            and isinstance(agent.get("assigned_node"), str)
        }
        return cls(job_id, status, name if isinstance(name, str) else None, manifest, placements)


async def _pump(
    feed: AsyncIterator[EventRecord | Heartbeat],
    fold: ProgressFold | None,
    changed: asyncio.Event,
    states: list[RuntimeState],
) -> None:
    """Read the feed to its end, folding what comes (unless the journal folds it) and
    saying that something changed; what the feed says of the runtime is kept in `states`
    for the stream to pass on."""
    async with aclosing(feed):
        async for item in feed:
            if isinstance(item, EventRecord):
                if fold is not None:
                    fold.add(item.value)
                changed.set()
            elif isinstance(item, RuntimeState):
                states.append(item)
                changed.set()


async def _more_within(changed: asyncio.Event, seconds: float) -> bool:
    """Whether more comes within `seconds` (the history is still arriving)."""
    changed.clear()
    try:
        async with asyncio.timeout(seconds):
            await changed.wait()
    except TimeoutError:
        return False
    return True


async def _either(changed: asyncio.Event, pump: asyncio.Task[None]) -> None:
    """Return when something changed or the feed has ended."""
    if changed.is_set() or pump.done():
        return
    waiting = asyncio.ensure_future(changed.wait())
    try:
        await asyncio.wait({waiting, pump}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
