"""ListEvents: one page of a job's history, optionally of one event type, streamed."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from contextlib import aclosing

from mn_api.application.journal import HistoryJournal, JournalPage
from mn_api.application.ports import RuntimePort
from mn_api.domain.documents import JsonDocument
from mn_api.domain.events import EventRecord, Heartbeat


class EventPage:
    """The events of one page, passed on one at a time as the runtime sends them (its
    heartbeats skipped here, without a layer of their own: this is the listing's hot loop).

    `next_offset` is known once the page has been read to its end: the offset of the
    next page, or None when this page is the last.
    """

    def __init__(
        self,
        offset: int,
        limit: int | None,
        kind: str | None,
        records: AsyncIterator[EventRecord | Heartbeat],
        first: EventRecord | Heartbeat | None,
    ) -> None:
        self.offset = offset
        self.next_offset: int | None = None
        self._limit = limit
        self._kind = kind
        self._records = records
        self._first = first

    async def _matching(self) -> AsyncIterator[JsonDocument]:
        """Every event of the history that the page's type filter keeps, in order."""
        async with aclosing(self._records) as records:
            record = self._first
            while record is not None:
                if type(record) is EventRecord and (
                    self._kind is None or record.type == self._kind
                ):
                    yield record.document
                record = await anext(records, None)

    async def __aiter__(self) -> AsyncIterator[JsonDocument]:
        matched = sent = 0
        async with aclosing(self._matching()) as documents:
            async for document in documents:
                matched += 1
                if matched > self.offset:
                    if self._limit is not None and sent >= self._limit:
                        self.next_offset = self.offset + sent
                        return
                    sent += 1
                    yield document


class TailPage(EventPage):
    """The last `tail` events (of one type, if asked), read to the end before the first goes
    out, since only then is their position known; `offset` is the first one's position."""

    def __init__(
        self,
        tail: int,
        kind: str | None,
        records: AsyncIterator[EventRecord | Heartbeat],
        first: EventRecord | Heartbeat | None,
    ) -> None:
        super().__init__(0, None, kind, records, first)
        self._tail = tail

    async def __aiter__(self) -> AsyncIterator[JsonDocument]:
        last: deque[JsonDocument] = deque(maxlen=self._tail)
        matched = 0
        async with aclosing(self._matching()) as documents:
            async for document in documents:
                matched += 1
                last.append(document)
        self.offset = matched - len(last)
        for document in last:
            yield document


async def _first_record(items: AsyncIterator[EventRecord | Heartbeat]) -> EventRecord | None:
    async for item in items:
        if type(item) is EventRecord:
            return item
    return None


class ListEvents:
    def __init__(self, runtime: RuntimePort, journal: HistoryJournal | None = None) -> None:
        self._runtime = runtime
        self._journal = journal

    async def __call__(
        self,
        job_id: str,
        *,
        offset: int = 0,
        limit: int | None = None,
        type: str | None = None,
        tail: int | None = None,
    ) -> EventPage | JournalPage:
        """A page from `offset`, or with `tail` the last `tail` events: from the journal in
        O(page) where it holds the history, else streamed from the runtime."""
        if self._journal is not None:
            journal = await self._journal.read(job_id)
            if journal is not None:
                return JournalPage(journal, offset=offset, limit=limit, kind=type, tail=tail)
        records = self._runtime.stream_events(job_id, follow=False)
        # Reading the first event now reports an unknown job before any answer starts: a
        # core may answer one with an empty stream, so then the job is looked up.
        first = await _first_record(records)
        if first is None:
            await self._runtime.get_job(job_id)
        if tail is not None:
            return TailPage(tail, type, records, first)
        return EventPage(offset, limit, type, records, first)
