"""StreamEvents: follow a job's events live, resuming after a position, until it ends."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass

from mn_api.application.journal import HistoryJournal, JournalPage, job_status
from mn_api.application.ports import RuntimePort
from mn_api.application.use_cases._history import history
from mn_api.domain.events import EventRecord, Heartbeat
from mn_api.domain.status import is_terminal


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The job reached a terminal status; nothing more will come."""

    status: str


FeedItem = EventRecord | Heartbeat | StreamEnd


class StreamEvents:
    def __init__(
        self,
        runtime: RuntimePort,
        heartbeat_seconds: float,
        journal: HistoryJournal | None = None,
    ) -> None:
        self._runtime = runtime
        self._heartbeat = heartbeat_seconds
        self._journal = journal

    async def __call__(
        self,
        job_id: str,
        *,
        after: int = -1,
        follow: bool = True,
        type: str | None = None,
        tail: int | None = None,
    ) -> AsyncIterator[FeedItem] | None:
        """The feed, or None when the job has ended and nothing follows `after`.

        With `tail` (and no `after`), the feed starts with the last `tail` events of the
        history (of `type`, if given). Everything that can fail before the first event (an
        unknown job, a runtime that does not answer) fails here, so that callers can still
        answer with an error.
        """
        status = await self._status(job_id)
        ended = is_terminal(status)
        if tail is not None and after < 0:
            after = await self._start_of_tail(job_id, tail, type)
        stream: AsyncIterator[EventRecord | Heartbeat] | None = None
        if self._journal is not None:
            # Fed from the journal: one core stream per job, whatever the watchers.
            stream = await self._journal.watch(
                job_id, after=after, follow=follow and not ended, ended=ended
            )
        if stream is None:
            stream = self._runtime.stream_events(
                job_id, follow=follow and not ended, after=after, heartbeat_seconds=self._heartbeat
            )
        first: EventRecord | Heartbeat | None = None
        if ended:
            first = await anext(stream, None)
            if first is None:
                await stream.aclose()
                return None
        return self._feed(job_id, stream, first, type, follow=follow, ended=ended)

    async def _start_of_tail(self, job_id: str, tail: int, kind: str | None) -> int:
        """The position just before the last `tail` events of the history: positions are
        the core's order, and no core tells a tailed stream's, so the history is counted."""
        if self._journal is not None:
            journal = await self._journal.read(job_id)
            if journal is not None:
                page = JournalPage(journal, kind=kind, tail=tail)
                records = page.records()
                return records[0].index - 1 if len(records) == tail else -1
        last: deque[int] = deque(maxlen=tail)
        async for record in history(self._runtime, job_id):
            if kind is None or record.type == kind:
                last.append(record.index)
        return last[0] - 1 if len(last) == tail else -1

    async def _status(self, job_id: str) -> str:
        return await job_status(self._runtime, job_id)

    async def _feed(
        self,
        job_id: str,
        stream: AsyncIterator[EventRecord | Heartbeat],
        first: EventRecord | Heartbeat | None,
        kind: str | None,
        *,
        follow: bool,
        ended: bool,
    ) -> AsyncIterator[FeedItem]:
        async with aclosing(stream):
            item = first if first is not None else await anext(stream, None)
            while item is not None:
                if not (isinstance(item, EventRecord) and kind is not None and item.type != kind):
                    yield item
                item = await anext(stream, None)
        if ended or follow:
            status = await self._status(job_id)
            if is_terminal(status):
                yield StreamEnd(status)
