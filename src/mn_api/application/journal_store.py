"""JournalStore: the journals of every job this process has read, within a memory budget,
and how each is read from the runtime; `HistoryJournal` (journal.py) serves them to readers
and watchers and follows live jobs.

- One read of the core at a time per job appends what is new; a broken or changed history
  is read anew (`_Diverged`).
- Every journal accounts for what it takes (journal_records.py), and the meter they share
  holds the total: over `budget_bytes`, the least recently read are let go, those nobody
  watches first. A live journal over `job_bytes` keeps a window of its newest events; one
  caught up with, or finished, is not kept (its readers stream from the core).
- A job known to have ended whose history does not show the event that ended it is read
  once more after `END_PAUSE`, one read for every reader; what it holds then is all of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from mn_api.application.journal_records import (
    JournalStats,
    Meter,
    _cleared,
    _Diverged,
    _Journal,
    job_status,
)
from mn_api.application.ports import RuntimePort
from mn_api.domain.events import EventRecord
from mn_api.domain.status import is_terminal

log = logging.getLogger("mn_api.journal")

# How often a quiet following stream from the core says it is alive: the follower looks
# then whether anybody still watches.
FOLLOW_HEARTBEAT_SECONDS = 1.0
# A follower nobody watches any more stops after this long.
FOLLOWER_IDLE_SECONDS = 5.0
# How long a followed job may stay quiet before its status is asked: one that has ended
# without the event that ended it is then made sure of (`END_PAUSE`).
QUIET_STATUS_SECONDS = 10.0
# How long after a job is known to have ended its history is read once more when it does
# not show the event that ended it: the real core records the status a moment before the
# event (within 20 ms, measured), and a core may lose the event or never send one.
END_PAUSE = 0.5


class JournalStore:
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
        job_bytes = job_bytes if job_bytes is not None else budget_bytes // 4
        self._job_budget = max(min(job_bytes, budget_bytes), 1)
        self._heartbeat = heartbeat_seconds
        self._clock = clock
        self._journals: OrderedDict[str, _Journal] = OrderedDict()
        self._meter = Meter(budget_bytes, self._bound)
        self.stats = JournalStats()
        self.core_streams = 0
        self.watchers = 0

    @property
    def bytes_held(self) -> int:
        """What every kept journal takes, as each accounts for it (journal_records.py)."""
        return self._meter.held

    @property
    def jobs_held(self) -> int:
        return len(self._journals)

    def _new(self, job_id: str) -> _Journal:
        journal = _Journal(job_id, self._meter)
        self._journals[job_id] = journal
        self._bound(journal)
        return journal

    def _touch(self, journal: _Journal) -> None:
        if self._journals.get(journal.job_id) is journal:
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
            if not journal.open:
                return
            try:
                await self._read_core(journal, follow=False)
            except _Diverged:
                log.warning("the history of job %s changed in the core: read anew", journal.job_id)
                journal.restart()
                await self._read_core(journal, follow=False)
        self._bound(journal)

    async def _settle(self, journal: _Journal, *, read: bool = True) -> None:
        """Make sure of the end of a job that has ended when its history does not show the
        event that ended it: once, and every reader who comes meanwhile shares it. Without
        `read`, what the journal holds is taken as it is: a following stream ran to its end,
        which the runtime gives only once the job has ended (having read for its end)."""
        if journal.settling is None:
            journal.settling = asyncio.ensure_future(self._settle_once(journal, read))
            journal.settling.add_done_callback(lambda _done: setattr(journal, "settling", None))
        await asyncio.shield(journal.settling)

    async def _settle_once(self, journal: _Journal, read: bool) -> None:
        """A core may record a job's end a moment before the event that ended it, or never
        record the event: the history is read once more after a pause (unless a following
        stream is open, which reads what comes), and what it holds then is all of it."""
        if read:
            await asyncio.sleep(END_PAUSE)
        if read and journal.open and not journal.streaming:
            await self._catch_up(journal)
        if journal.open:
            log.info(
                "job %s has ended and its history has no event that ended it: its %d events "
                "are taken as the whole history",
                journal.job_id,
                journal.end,
            )
            journal.final = True
            journal.wake()

    async def _read_core(self, journal: _Journal, *, follow: bool) -> bool:
        """One stream from the core, resuming after the journal's end; the last known event
        is asked for again and must read the same, else the history has diverged. True when
        the stream ran to its own end (a following one: the job has ended)."""
        if journal.oversized and not follow:
            # A history too big to keep is not read again for nothing: readers stream it.
            return False
        known = journal.end
        check = known - 1 if known > journal.base else None
        after = known - 2 if check is not None else known - 1
        seen_any = False
        quiet_since = self._clock()
        self.core_streams += 1
        journal.streaming = follow
        try:
            stream = self._runtime.stream_events(
                journal.job_id,
                follow=follow,
                after=after,
                heartbeat_seconds=FOLLOW_HEARTBEAT_SECONDS if follow else None,
            )
            async with contextlib.aclosing(stream):
                async for item in stream:
                    if journal.dropped:
                        return False  # let go: nobody reads what it would hold
                    if type(item) is not EventRecord:
                        if journal.trouble_since is not None:
                            self._recovered(journal)
                        if follow and self._clock() - quiet_since >= QUIET_STATUS_SECONDS:
                            # Long quiet: a core that follows until an end event it lost
                            # would stay quiet for ever once the job ended.
                            quiet_since = self._clock()
                            if is_terminal(await job_status(self._runtime, journal.job_id)):
                                journal.ended = True
                        if follow and (self._unwatched(journal) or journal.ended):
                            # Nobody watches any more, or a job known to have ended went
                            # quiet without its end event: the follower sees to it.
                            return False
                        continue
                    seen_any = True
                    quiet_since = self._clock()
                    if journal.trouble_since is not None:
                        self._recovered(journal)
                    if item.index < known:
                        if item.index == check and item.document.raw != journal.raws[-1]:
                            raise _Diverged
                        continue
                    if item.index != journal.end:
                        raise _Diverged  # a gap: positions must follow one another
                    journal.append(item.document)
                    if journal.size > self._job_budget and not self._outgrown(journal, follow):
                        return False
                    if self._meter.held > self._budget:
                        self._bound(journal)
                # Read to the stream's own end (the runtime ends it after a job's end): a
                # call given up half way would leave its trace span open.
        finally:
            self.core_streams -= 1
            journal.streaming = False
        if check is not None and not seen_any:
            raise _Diverged  # the core no longer holds what the journal does
        if not seen_any and known == 0:
            await self._runtime.get_job(journal.job_id)  # an unknown job, or none yet
        return True

    def _outgrown(self, journal: _Journal, follow: bool) -> bool:
        """A journal over a job's share: a followed one keeps a window of its newest events
        for its watchers (True: read on); one caught up with, or finished and unwatched,
        keeps nothing."""
        if not follow or (journal.final and journal.watchers == 0):
            journal.oversized = True
            journal.forget_events()
            self.stats.oversized += 1
            return False
        journal.trim(self._job_budget // 2)
        if journal.size <= self._job_budget:
            return True
        # Its progress fold alone outgrows the share: let go, its watchers read the runtime.
        self.stats.oversized += 1
        self._drop(journal)
        return False

    def _unwatched(self, journal: _Journal) -> bool:
        idle = journal.idle_since
        return (
            journal.watchers == 0
            and idle is not None
            and self._clock() - idle >= FOLLOWER_IDLE_SECONDS
        )

    def _recovered(self, journal: _Journal) -> None:
        journal.trouble_since = journal.trouble = None
        journal.recovered_at = time.time()
        journal.wake()

    def _drop(self, journal: _Journal) -> None:
        """Let the journal go: its follower stops, its watchers read on from the runtime."""
        follower = journal.follower
        if follower is not None and follower is not asyncio.current_task():
            follower.cancel()
            journal.follower = None
        if self._journals.get(journal.job_id) is journal:
            del self._journals[journal.job_id]
        journal.release()

    def _bound(self, keep: _Journal | None = None) -> None:
        """Least recently read journals out until the budget holds: first those nobody
        watches, then watched ones (their watchers read on from the runtime). `keep`, the
        journal being read, stays: a job's share is within the budget."""
        for watched in (False, True):
            for other in list(self._journals.values()):
                if self._meter.held <= self._budget:
                    return
                if other is keep or (other.watchers > 0) != watched:
                    continue
                self._drop(other)
                self.stats.evictions += 1
