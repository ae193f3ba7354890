"""WorkflowProgress: a job's progress as one document, and followed live as snapshots.

Built from the job's whole history: with the history journal, from the progress it
folds as events arrive (a snapshot costs O(agents)); without it (or for a history too big
to keep), each viewer folds the history it reads from the runtime.

Every viewer of a live job watched through the journal shares one task that builds each
snapshot once, as a document and as JSON, and hands that same snapshot to each of them; a
big snapshot watched by many is built less often, so that what the gateway sends a job's
viewers stays within `stream_bytes_per_second` (a snapshot at most every
`min_interval_seconds` otherwise). A viewer's snapshots never go back: the first one is
built from the history read up to now, and a history still being read says less of the
job's status than the runtime reported (a `job_scheduled` read first says `pending` of a
job that runs), never more.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import suppress
from typing import Any

from mn_api.application.journal import HistoryJournal, job_status
from mn_api.application.ports import RuntimePort
from mn_api.application.use_cases._history import history
from mn_api.application.use_cases._progress_feed import (
    FIRST_READ_SECONDS,
    Channel,
    Snapshot,
    either,
    more_within,
    pump_feed,
)
from mn_api.application.use_cases._topology import TopologyLookup
from mn_api.domain.events import EventRecord, Heartbeat, RuntimeState, iso_timestamp
from mn_api.domain.progress import ProgressFold, later_status, snapshot, status_stage
from mn_api.domain.status import is_terminal

__all__ = ["Snapshot", "WorkflowProgress"]

# Snapshots kept for the viewers of the same jobs (one per job, as of its last change).
KEPT_SNAPSHOTS = 256
# What the gateway sends the viewers of one job each second, at most, in snapshots: the
# interval between snapshots grows with their size times the number of viewers.
STREAM_BYTES_PER_SECOND = 8 * 1024 * 1024


def compact_json(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


class WorkflowProgress:
    def __init__(
        self,
        runtime: RuntimePort,
        topology: TopologyLookup,
        journal: HistoryJournal | None = None,
        *,
        heartbeat_seconds: float = 5.0,
        min_interval_seconds: float = 0.25,
        stream_bytes_per_second: float = STREAM_BYTES_PER_SECOND,
        encode: Callable[[Any], bytes] = compact_json,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._runtime = runtime
        self._topology = topology
        self._journal = journal
        self._heartbeat = heartbeat_seconds
        self._interval = min_interval_seconds
        self._bytes_per_second = stream_bytes_per_second
        self._encode = encode
        self._clock = clock
        self._kept: OrderedDict[str, tuple[tuple[int, str], Snapshot]] = OrderedDict()
        # The live jobs watched through the journal, and those whose channel is opening.
        self._channels: dict[str, Channel] = {}
        self._opening: dict[str, asyncio.Future[Channel | None]] = {}
        # Viewers who fold the history themselves, by job.
        self._own_viewers: Counter[str] = Counter()

    async def __call__(self, job_id: str) -> dict[str, Any]:
        """The job's progress now; JobNotFoundError for an unknown job."""
        return (await self.snapshot(job_id)).document

    async def snapshot(self, job_id: str) -> Snapshot:
        """The job's progress now, as a document and as JSON."""
        job = await _Job.look_up(self, job_id)
        fold = await self._whole_fold(job_id, job.ended)
        return self._snapshot(job, fold, None)

    async def follow(self, job_id: str) -> AsyncIterator[Snapshot | Heartbeat]:
        """A snapshot now, another after each change (at most every `min_interval`, less
        often for big snapshots), a Heartbeat when quiet, and a last snapshot once the job
        has ended. Fails before the first snapshot (JobNotFoundError, a runtime down) so
        that callers can answer."""
        # A job with an open channel is live and known: its viewers ask the runtime nothing.
        channel = await self._open_channel(job_id)
        if channel is not None:
            return _viewed(channel)
        job = await _Job.look_up(self, job_id)
        if self._journal is not None and not job.ended:
            channel = await self._channel(job)
            if channel is not None:
                return _viewed(channel)
        if job.ended:  # the whole history, then the end: one snapshot
            return self._one(job, await self._whole_fold(job_id, ended=True))
        # A history too big for the journal, or no journal: this viewer folds it itself.
        feed = self._runtime.stream_events(job_id, follow=True, heartbeat_seconds=self._heartbeat)
        return self._follow(job, ProgressFold(), feed)

    async def close(self) -> None:
        """Stop building snapshots for anyone (the process is stopping)."""
        for channel in list(self._channels.values()):
            await channel.close()
        self._channels.clear()

    async def _open_channel(self, job_id: str) -> Channel | None:
        """The job's channel if it is open, or opening (then once it has opened)."""
        channel = self._channels.get(job_id)
        if channel is not None and not channel.closed:
            return channel
        opening = self._opening.get(job_id)
        return None if opening is None else await asyncio.shield(opening)

    async def _channel(self, job: _Job) -> Channel | None:
        """The job's channel, opened for its first viewer (every viewer who comes while it
        opens waits for the same); None when the journal cannot hold the job's history."""
        channel = self._channels.get(job.job_id)
        if channel is not None and not channel.closed:
            return channel
        opening = self._opening.get(job.job_id)
        if opening is None:
            opening = asyncio.ensure_future(self._open(job))
            self._opening[job.job_id] = opening
            opening.add_done_callback(lambda done: self._opened(job.job_id, done))
        return await asyncio.shield(opening)

    def _opened(self, job_id: str, done: asyncio.Future[Channel | None]) -> None:
        if self._opening.get(job_id) is done:
            del self._opening[job_id]
        if not done.cancelled():
            done.exception()  # told to whoever waits for it; not a stray failure

    async def _open(self, job: _Job) -> Channel | None:
        """Read the job's history up to now (the first snapshot shows it), then watch it."""
        assert self._journal is not None
        kept = await self._journal.read(job.job_id, ended=False)
        if kept is None:
            return None
        feed = await self._journal.watch(job.job_id, after=kept.end - 1, ended=False)
        if feed is None:
            return None
        channel = Channel(
            job.job_id,
            feed,
            build=lambda status: self._snapshot(job, kept.progress, status),
            behind=lambda: (
                status_stage(kept.progress.status or "pending") < status_stage(job.status)
            ),
            final_status=lambda: job_status(self._runtime, job.job_id),
            fold=lambda: kept.progress,
            pace=self._pace,
            heartbeat=self._heartbeat,
            on_closed=self._closed,
        )
        channel.start()
        await channel.ready.wait()
        if channel.error is not None:
            raise channel.error  # told to every viewer who waited for the channel
        if not channel.closed:
            self._channels[job.job_id] = channel
        elif not channel.ended:
            return None  # closed as it opened (the gateway stops): the viewer reads alone
        return channel

    def _closed(self, channel: Channel) -> None:
        if self._channels.get(channel.job_id) is channel:
            del self._channels[channel.job_id]

    def _pace(self, size: int, viewers: int) -> float:
        """How long to wait after sending a snapshot of `size` bytes to `viewers`."""
        return max(self._interval, size * max(viewers, 1) / self._bytes_per_second)

    async def _one(self, job: _Job, fold: ProgressFold) -> AsyncIterator[Snapshot | Heartbeat]:
        yield self._snapshot(job, fold, None)

    async def _follow(
        self, job: _Job, fold: ProgressFold, feed: AsyncIterator[EventRecord | Heartbeat]
    ) -> AsyncIterator[Snapshot | Heartbeat]:
        """One viewer's own snapshots, from the history it reads and folds itself."""
        changed = asyncio.Event()
        states: list[RuntimeState] = []
        pump = asyncio.create_task(pump_feed(feed, fold, changed, states))
        self._own_viewers[job.job_id] += 1
        try:
            # The history is read first: the first snapshot shows it.
            with suppress(TimeoutError):
                async with asyncio.timeout(FIRST_READ_SECONDS):
                    await either(changed, pump)
                    while not pump.done() and await more_within(changed, 0.05):
                        pass
            changed.clear()
            last = self._snapshot(job, fold, None, shared=False)
            yield last
            while not pump.done() or changed.is_set():
                try:
                    async with asyncio.timeout(self._heartbeat):
                        await either(changed, pump)
                except TimeoutError:
                    yield Heartbeat()
                    continue
                if changed.is_set():
                    changed.clear()
                    while states:
                        yield states.pop(0)
                    now = self._snapshot(job, fold, None, shared=False)
                    if not now.follows(last):
                        continue  # events the last snapshot had already taken in
                    last = now
                    yield last
                    # What comes meanwhile: one snapshot.
                    await asyncio.sleep(self._pace(len(last.json), self._own_viewers[job.job_id]))
            pump.result()  # a failure of the feed is the stream's
            status = fold.status if is_terminal(fold.status or "") else None
            status = status or await job_status(self._runtime, job.job_id)
            final = self._snapshot(job, fold, status, shared=False)
            if final.follows(last):
                yield final
        finally:
            self._own_viewers[job.job_id] -= 1
            if self._own_viewers[job.job_id] <= 0:
                del self._own_viewers[job.job_id]
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
    ) -> Snapshot:
        """`status`: the job's, when known for sure (its end); else the later of what the
        history and the runtime's report say."""
        status = status or later_status(fold.status, job.status) or "pending"
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
        built = Snapshot(document, self._encode(document))
        if shared:
            self._kept[job.job_id] = (key, built)
            self._kept.move_to_end(job.job_id)
            while len(self._kept) > KEPT_SNAPSHOTS:
                self._kept.popitem(last=False)
        return built


def _viewed(channel: Channel) -> AsyncIterator[Snapshot | Heartbeat]:
    channel.expect_viewer()
    return channel.view()


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
