"""HistoryJournal: each job's history read from the runtime once, and shared by every reader.

Without it, every page, stream, resume, graph and dead-letter listing re-reads the whole
history from the core. Here, per job, one reader of the core at a time appends what is new
to an in-process journal of raw events by position; pages, streams (with Last-Event-ID
resumes), dead letters and the graph read the journal by position, and an index by event
type and a fold of the graph are extended with each new event.

- A finished, failed or cancelled job's history is final once its end has been read: it is
  served from memory in O(page) and never read from the core again (until a replay reopens
  it, or memory is needed).
- A live job's journal is brought up to date by one catch-up read at a time when a page is
  asked for, and kept up to date by one follower while anyone watches it: a following stream
  where the release follows, the adapter's polling where it does not. However many readers
  and watchers, one core stream per job.
- Watchers read the journal by position: a slow one never holds the others back, and one
  that asks for a position the journal no longer holds is told so (`HistoryWindowError`).
- Memory is bounded: `budget_bytes` over every journal, least recently read first out, and
  `job_bytes` for one. A live job that outgrows its share keeps a window of its newest events;
  a finished history too big for it is not kept (its readers stream from the core instead).
- Positions always follow the core's order. When a read resumes after a broken stream, the
  known last event is read again and compared: a history that no longer matches (a core
  that lost or rewrote it) is dropped and read anew rather than served half old.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable

from mn_api.application.journal_records import (
    JournalPage,
    JournalStats,
    _cleared,
    _Diverged,
    _Journal,
    job_status,
)
from mn_api.application.ports import RuntimePort
from mn_api.domain.errors import (
    DomainError,
    HistoryWindowError,
    JobNotFoundError,
    RuntimeAuthError,
    RuntimeFailureError,
)
from mn_api.domain.events import EventRecord, Heartbeat, RuntimeState, iso_timestamp
from mn_api.domain.graph import EventFold
from mn_api.domain.progress import ProgressFold
from mn_api.domain.status import is_terminal

__all__ = ["HistoryJournal", "JournalPage", "job_status"]

log = logging.getLogger("mn_api.journal")

# How often a quiet following stream from the core says it is alive: the follower looks
# then whether anybody still watches.
FOLLOW_HEARTBEAT_SECONDS = 1.0
# A follower nobody watches any more stops after this long.
FOLLOWER_IDLE_SECONDS = 5.0
# How long a reader of a job that has ended waits for its follower to read that end.
FOLLOWER_END_SECONDS = 10.0
# How often, and how far apart, a job known to have ended is read again until the event
# that ended it shows.
END_READS = 20
END_PAUSE = 0.1
# How long a broken follow stream waits before it resumes, at first and at most.
RESUME_BACKOFF = (0.1, 5.0)
# How long the follower may fail to read the runtime before watchers are told that what
# they see may be stale (`RuntimeState`); a broken stream resumed within it goes unsaid.
STALE_AFTER_SECONDS = 1.0


# What a follower does not expect: anything but the runtime's own refusals and a history that
# changed. It ends the follower, and its watchers get a problem instead of a silent retry.
_Unexpected = (ArithmeticError, AssertionError, AttributeError, LookupError, TypeError, ValueError)


def _state(journal: _Journal, stale: bool) -> RuntimeState:
    """What a watcher is told when the runtime stops answering its follower, or answers
    again."""
    if not stale:
        return RuntimeState(available=True, since=iso_timestamp(journal.recovered_at))
    return RuntimeState(
        available=False, since=iso_timestamp(journal.trouble_at), error=journal.trouble
    )


class HistoryJournal:
    """The journals of every job this process has read, within a memory budget."""

    def __init__(
        self,
        runtime: RuntimePort,
        *,
        budget_bytes: int = 64 * 1024 * 1024,
        job_bytes: int | None = None,
        heartbeat_seconds: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._runtime = runtime
        self._budget = budget_bytes
        self._job_budget = job_bytes if job_bytes is not None else max(budget_bytes // 4, 1)
        self._heartbeat = heartbeat_seconds
        self._clock = clock
        self._journals: OrderedDict[str, _Journal] = OrderedDict()
        self._held = 0
        self.stats = JournalStats()
        self.core_streams = 0
        self.watchers = 0

    # -- what the gauges read -------------------------------------------------------------

    @property
    def bytes_held(self) -> int:
        return sum(j.size for j in self._journals.values())

    @property
    def jobs_held(self) -> int:
        return len(self._journals)

    # -- reading ----------------------------------------------------------------------------

    async def read(
        self, job_id: str, *, ended: bool | None = None, watching: bool = False
    ) -> _Journal | None:
        """The job's whole journal, up to date as of now; None when its history is too big
        to keep (the caller streams from the runtime instead). An unknown job raises
        JobNotFoundError, as the runtime reports it. `ended`: whether the caller knows the
        job has ended (else, where it matters, the runtime is asked). `watching`: the caller
        watches the job next, so its follower is started first and does the reading."""
        if watching and not ended:
            self._follow_first(job_id)
        journal = await self._current(job_id, ended)
        return journal if journal.whole else None

    def _follow_first(self, job_id: str) -> None:
        """Start the follower of a job not known to be final before anything reads it: its
        own read brings the journal up to date, and every reader or watcher who comes
        meanwhile finds it rather than reading the core again."""
        known = self._journals.get(job_id)
        if known is None or not known.final:
            self._ensure_follower(known or self._new(job_id))

    async def _current(self, job_id: str, ended: bool | None = None) -> _Journal:
        journal = self._journals.get(job_id)
        if journal is None:
            journal = self._new(job_id)
        self._touch(journal)
        if journal.final:
            self.stats.hits += 1
            return journal
        if journal.follower is not None and not journal.follower.done():
            # Kept current by its follower, as of its last read: reading the core now would
            # be a second reader of the same history. Unless the job has ended, and the
            # follower has yet to read that end: then the reader waits for it.
            if ended is None:
                ended = is_terminal(await job_status(self._runtime, job_id))
            if not ended or await self._followed_to_the_end(journal):
                self.stats.hits += 1
                return journal
            if journal.follower is not None and not journal.follower.done():
                return journal  # a follower that does not end: what it has, not a hang
        self.stats.misses += 1
        try:
            await self._catch_up(journal)
            # A core may record a job's end before the event that ended it reaches the
            # history: a reader who knows the job ended reads again until it shows.
            for _ in range(END_READS):
                if not ended or journal.final or journal.oversized:
                    break
                await asyncio.sleep(END_PAUSE)
                await self._catch_up(journal)
        except DomainError:
            if journal.end == 0:
                self._drop(journal)  # an unknown job leaves nothing behind
            raise
        return journal

    def reopen(self, job_id: str) -> None:
        """The job's history grows again (a dead letter was replayed): it is no longer final."""
        journal = self._journals.get(job_id)
        if journal is not None:
            journal.final = False

    def forget(self, job_ids: Iterable[str] | None = None) -> None:
        """Drop the journals of these jobs (of every finished job when None): cleared jobs."""
        ids = (
            [job_id for job_id, journal in self._journals.items() if journal.final]
            if job_ids is None
            else list(job_ids)
        )
        for job_id in ids:
            journal = self._journals.get(job_id)
            if journal is not None and journal.watchers == 0:
                self._drop(journal)

    async def close(self) -> None:
        for journal in list(self._journals.values()):
            await self._stop_follower(journal)
        self._journals.clear()

    # -- watching ---------------------------------------------------------------------------

    async def watch(
        self, job_id: str, *, after: int = -1, follow: bool = True, ended: bool | None = None
    ) -> AsyncIterator[EventRecord | Heartbeat] | None:
        """Every event after `after`, from the journal, then (with `follow`) each new one as
        it comes, until the job's end; Heartbeat when quiet for the heartbeat interval.
        None when the history is too big to keep: the caller streams from the runtime.
        `ended`: whether the caller knows the job has ended."""
        if follow and not ended:
            self._follow_first(job_id)
        journal = await self._current(job_id, ended)
        if after + 1 < journal.base or (journal.oversized and journal.final):
            return None  # positions this journal does not hold: read from the runtime
        if journal.follower is None:
            journal.failure = None  # a new watcher tries again
        journal.watchers += 1
        journal.idle_since = None
        self.watchers += 1
        return self._watch(journal, after, follow)

    async def _watch(
        self, journal: _Journal, after: int, follow: bool
    ) -> AsyncIterator[EventRecord | Heartbeat]:
        position = after + 1
        told_stale = False
        try:
            while True:
                stale = (
                    journal.trouble_since is not None
                    and self._clock() - journal.trouble_since >= STALE_AFTER_SECONDS
                )
                if stale != told_stale:
                    told_stale = stale
                    yield _state(journal, stale)
                if position < journal.base:
                    raise HistoryWindowError(journal.job_id, position, journal.base)
                while position < journal.end:
                    if position < journal.base:
                        raise HistoryWindowError(journal.job_id, position, journal.base)
                    yield journal.record(position)
                    position += 1
                if journal.final or not follow:
                    return
                if journal.failure is not None:
                    raise journal.failure
                self._ensure_follower(journal)
                changed = journal.changed
                if position < journal.end:
                    continue
                try:
                    async with asyncio.timeout(self._heartbeat):
                        await changed.wait()
                except TimeoutError:
                    yield Heartbeat()
        finally:
            journal.watchers -= 1
            self.watchers -= 1
            if journal.watchers == 0:
                journal.idle_since = self._clock()
            self._touch(journal)

    # -- keeping journals current -------------------------------------------------------------

    def _new(self, job_id: str) -> _Journal:
        journal = _Journal(job_id)
        self._journals[job_id] = journal
        return journal

    def _touch(self, journal: _Journal) -> None:
        journal.last_used = self._clock()
        if journal.job_id in self._journals:
            self._journals.move_to_end(journal.job_id)

    async def _catch_up(self, journal: _Journal) -> None:
        """Read what the core holds beyond the journal's end: one read at a time per job,
        and every reader who comes while one is under way shares it."""
        if journal.catching_up is None:
            journal.catching_up = asyncio.ensure_future(self._catch_up_once(journal))
            journal.catching_up.add_done_callback(lambda _done: _cleared(journal))
        await asyncio.shield(journal.catching_up)

    async def _catch_up_once(self, journal: _Journal) -> None:
        async with journal.lock:
            if journal.final:
                return
            try:
                await self._read_core(journal, follow=False)
            except _Diverged:
                log.warning("the history of job %s changed in the core: read anew", journal.job_id)
                self._reset(journal)
                await self._read_core(journal, follow=False)
        self._bound(journal)

    async def _read_core(self, journal: _Journal, *, follow: bool) -> None:
        """One stream from the core, resuming after the journal's end; the last known event
        is asked for again and must read the same, else the history has diverged."""
        if journal.oversized and not follow:
            # A history too big to keep is not read again for nothing: readers stream it.
            return
        known = journal.end
        check = known - 1 if known > journal.base else None
        after = known - 2 if check is not None else known - 1
        seen_any = False
        self.core_streams += 1
        try:
            stream = self._runtime.stream_events(
                journal.job_id,
                follow=follow,
                after=after,
                heartbeat_seconds=FOLLOW_HEARTBEAT_SECONDS if follow else None,
            )
            async with contextlib.aclosing(stream):
                async for item in stream:
                    if type(item) is not EventRecord:
                        if journal.trouble_since is not None:
                            self._recovered(journal)
                        if follow and self._unwatched(journal):
                            return  # nobody watches any more: the follower stops
                        continue
                    seen_any = True
                    if journal.trouble_since is not None:
                        self._recovered(journal)
                    if item.index < known:
                        if item.index == check and item.document.raw != journal.raws[-1]:
                            raise _Diverged
                        continue
                    if item.index != journal.end:
                        raise _Diverged  # a gap: positions must follow one another
                    journal.append(item.document)
                    if journal.size > self._job_budget:
                        if journal.final or not follow:
                            journal.oversized = True
                            self._shrink(journal)
                            return
                        journal.trim(self._job_budget // 2)
                # Read to the stream's own end (the runtime ends it after a job's end): a
                # call given up half way would leave its trace span open.
        finally:
            self.core_streams -= 1
        if check is not None and not seen_any:
            raise _Diverged  # the core no longer holds what the journal does
        if not seen_any and known == 0:
            await self._runtime.get_job(journal.job_id)  # an unknown job, or none yet

    async def _followed_to_the_end(self, journal: _Journal) -> bool:
        """Wait (a while) for the follower to read the end of a job that has ended."""
        try:
            async with asyncio.timeout(FOLLOWER_END_SECONDS):
                while not journal.final and journal.follower is not None:
                    await journal.changed.wait()
        except TimeoutError:
            pass
        return journal.final

    def _unwatched(self, journal: _Journal) -> bool:
        idle = journal.idle_since
        return (
            journal.watchers == 0
            and idle is not None
            and self._clock() - idle >= FOLLOWER_IDLE_SECONDS
        )

    def _ensure_follower(self, journal: _Journal) -> None:
        if journal.follower is None or journal.follower.done():
            journal.failure = None
            journal.follower = asyncio.create_task(
                self._follow(journal), name=f"journal-follower-{journal.job_id}"
            )

    async def _follow(self, journal: _Journal) -> None:
        """One following stream for every watcher of the job, resumed when it breaks."""
        backoff = RESUME_BACKOFF[0]
        while not journal.final and not self._unwatched(journal):
            try:
                async with journal.lock:
                    await self._read_core(journal, follow=True)
                backoff = RESUME_BACKOFF[0]
            except _Diverged:
                log.warning("the history of job %s changed in the core: read anew", journal.job_id)
                self._reset(journal)
                continue
            except (JobNotFoundError, RuntimeAuthError) as error:
                # Nothing to resume: the job is gone, or the runtime refuses the gateway.
                journal.failure = error
                break
            except _Unexpected as error:
                log.exception("following job %s failed", journal.job_id)
                journal.failure = RuntimeFailureError(
                    f"following job {journal.job_id!r} failed ({type(error).__name__})"
                )
                break
            except DomainError as error:
                # A broken stream: resumed after the journal's end, nothing lost or repeated.
                log.warning("following job %s broke: %s", journal.job_id, error.detail)
                if journal.trouble_since is None:
                    journal.trouble_since, journal.trouble_at = self._clock(), time.time()
                journal.trouble = error
                journal.wake()  # watchers look whether to say that what they see is stale
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RESUME_BACKOFF[1])
                continue
            if journal.final:
                break
            # The stream ended before the job did: a brief pause, then resume after the end.
            await asyncio.sleep(backoff)
        journal.follower = None
        journal.wake()
        self._bound(journal)

    def _recovered(self, journal: _Journal) -> None:
        journal.trouble_since = journal.trouble = None
        journal.recovered_at = time.time()
        journal.wake()

    async def _stop_follower(self, journal: _Journal) -> None:
        task, journal.follower = journal.follower, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- memory -------------------------------------------------------------------------------

    def _reset(self, journal: _Journal) -> None:
        journal.raws, journal.by_type, journal.dead_letters = [], {}, []
        journal.fold, journal.base, journal.size = EventFold(), 0, 0
        journal.progress = ProgressFold()
        journal.final = journal.oversized = False
        journal.wake()

    def _shrink(self, journal: _Journal) -> None:
        """A history too big to keep: only how far it goes is remembered."""
        journal.base = journal.end
        journal.raws, journal.by_type, journal.dead_letters = [], {}, []
        journal.fold = EventFold()
        journal.size = 0
        self.stats.oversized += 1

    def _drop(self, journal: _Journal) -> None:
        if journal.follower is not None and not journal.follower.done():
            journal.follower.cancel()
        self._journals.pop(journal.job_id, None)

    def _bound(self, journal: _Journal) -> None:
        """Least recently read journals out until the budget holds (watched ones stay)."""
        total = self.bytes_held
        for other in list(self._journals.values()):
            if total <= self._budget:
                break
            if other is journal or other.watchers or other.follower is not None:
                continue
            total -= other.size
            self._drop(other)
            self.stats.evictions += 1
