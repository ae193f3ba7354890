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
- A job that has ended, whose history does not show the event that ended it (a core records
  the status first, or lost the event), is read once more after a short pause, by one read
  that every reader shares; what the history holds then is taken as the whole of it.
- Memory is bounded: `budget_bytes` over every journal, watched or not, and `job_bytes` for
  one, each accounted with its indexes and folds (journal_records.py). Over the budget, the
  least recently read journals are let go, those nobody watches first; the watchers of one
  let go read on from the runtime, each on its own. A live job that outgrows its share keeps
  a window of its newest events; a finished history too big for it is not kept (its readers
  stream from the core instead).
- Positions always follow the core's order. When a read resumes after a broken stream, the
  known last event is read again and compared: a history that no longer matches (a core
  that lost or rewrote it) is dropped and read anew rather than served half old.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable

from mn_api.application.journal_records import JournalPage, _Diverged, _Journal, job_status
from mn_api.application.journal_store import JournalStore
from mn_api.domain.errors import (
    DomainError,
    HistoryWindowError,
    JobNotFoundError,
    RuntimeAuthError,
    RuntimeFailureError,
)
from mn_api.domain.events import EventRecord, Heartbeat, RuntimeState, iso_timestamp
from mn_api.domain.status import is_terminal

__all__ = ["HistoryJournal", "JournalPage", "job_status"]

log = logging.getLogger("mn_api.journal")

# How long a reader of a job that has ended waits for its follower to read that end.
FOLLOWER_END_SECONDS = 10.0
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


class HistoryJournal(JournalStore):
    """The journals of every job this process has read, served to readers and watchers."""

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
        if ended:
            journal.ended = True
        elif ended is None and journal.ended:
            ended = True
        if journal.final:
            self.stats.hits += 1
            return journal
        if journal.settling is not None:
            # Another reader makes sure of the end of a job that has ended: that one read
            # is every reader's.
            await asyncio.shield(journal.settling)
            self.stats.hits += 1
            return journal
        if _following(journal):
            # Kept current by its follower, as of its last read: reading the core now would
            # be a second reader of the same history. Unless the job has ended, and the
            # follower has yet to read that end: then the reader waits for it.
            if ended is None:
                ended = is_terminal(await job_status(self._runtime, job_id))
                journal.ended = ended
            if not ended or await self._followed_to_the_end(journal):
                self.stats.hits += 1
                return journal
            if _following(journal):
                return journal  # a follower that does not end: what it has, not a hang
        self.stats.misses += 1
        known = journal.end
        try:
            await self._catch_up(journal)
            if journal.open and not journal.oversized:
                if ended is None and journal.end == known > 0:
                    # Nothing new: a quiet live job, or one that has ended without the
                    # event that ended it. Its status tells.
                    ended = journal.ended = is_terminal(await job_status(self._runtime, job_id))
                if ended:
                    await self._settle(journal)
        except DomainError:
            if journal.end == 0:
                self._drop(journal)  # an unknown job leaves nothing behind
            raise
        return journal

    def reopen(self, job_id: str) -> None:
        """The job's history grows again (a dead letter was replayed): it is no longer final."""
        journal = self._journals.get(job_id)
        if journal is not None:
            journal.final = journal.ended = False

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
            self._drop(journal)

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
        if journal.dropped or after + 1 < journal.base or (journal.oversized and journal.final):
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
            while not journal.dropped:
                stale = (
                    journal.trouble_since is not None
                    and self._clock() - journal.trouble_since >= STALE_AFTER_SECONDS
                )
                if stale != told_stale:
                    told_stale = stale
                    yield _state(journal, stale)
                    continue
                if position < journal.base:
                    raise HistoryWindowError(journal.job_id, position, journal.base)
                while position < journal.end and not journal.dropped:
                    if position < journal.base:
                        raise HistoryWindowError(journal.job_id, position, journal.base)
                    yield journal.record(position)
                    position += 1
                if journal.dropped:
                    break
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
        # Let go to keep within the memory budget: the rest comes from the runtime.
        async with contextlib.aclosing(self._from_runtime(journal, position, follow)) as rest:
            async for item in rest:
                yield item

    async def _from_runtime(
        self, journal: _Journal, position: int, follow: bool
    ) -> AsyncIterator[EventRecord | Heartbeat]:
        """What a watcher of a journal that was let go reads: the history from `position`
        on, from the runtime, on its own, as when no journal is kept. The events go on
        feeding the journal's progress fold, which viewers of the job's progress share."""
        progress = journal.progress
        stream = self._runtime.stream_events(
            journal.job_id,
            follow=follow and not journal.final,
            after=position - 1,
            heartbeat_seconds=self._heartbeat,
        )
        self.core_streams += 1
        try:
            async with contextlib.aclosing(stream):
                async for item in stream:
                    if type(item) is EventRecord and item.index == journal.progress_end:
                        value = item.value
                        if isinstance(value, dict):
                            progress.add(value)
                        journal.progress_end += 1
                    yield item
        finally:
            self.core_streams -= 1

    # -- keeping journals current -------------------------------------------------------------

    async def _followed_to_the_end(self, journal: _Journal) -> bool:
        """Wait (a while) for the follower to read the end of a job that has ended."""
        try:
            async with asyncio.timeout(FOLLOWER_END_SECONDS):
                while journal.open and _following(journal):
                    await journal.changed.wait()
        except TimeoutError:
            pass
        return journal.final

    def _ensure_follower(self, journal: _Journal) -> None:
        if journal.dropped:
            return
        if journal.follower is None or journal.follower.done():
            journal.failure = None
            journal.follower = asyncio.create_task(
                self._follow(journal), name=f"journal-follower-{journal.job_id}"
            )

    async def _follow(self, journal: _Journal) -> None:
        """One following stream for every watcher of the job, resumed when it breaks."""
        backoff = RESUME_BACKOFF[0]
        while journal.open and not self._unwatched(journal):
            try:
                async with journal.lock:
                    ran_out = await self._read_core(journal, follow=True)
                backoff = RESUME_BACKOFF[0]
                if not journal.open or self._unwatched(journal):
                    break
                # The stream ended, or went quiet, before the event that ended the job: if
                # the job has ended, its end is made sure of once (a stream that ran to its
                # end did: the runtime ends one only once the job has ended).
                if journal.ended or is_terminal(await job_status(self._runtime, journal.job_id)):
                    journal.ended = True
                    await self._settle(journal, read=not ran_out)
                    continue
            except _Diverged:
                log.warning("the history of job %s changed in the core: read anew", journal.job_id)
                journal.restart()
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
            # The stream ended before the job did: a brief pause, then resume after the end.
            await asyncio.sleep(backoff)
        journal.follower = None
        journal.wake()
        self._bound()

    async def _stop_follower(self, journal: _Journal) -> None:
        task, journal.follower = journal.follower, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _following(journal: _Journal) -> bool:
    return journal.follower is not None and not journal.follower.done()
