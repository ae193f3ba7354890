"""ListEvents: one page of a job's history, optionally of one event type, streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

from mn_api.application.ports import RuntimePort
from mn_api.application.use_cases._history import history
from mn_api.domain.documents import JsonDocument
from mn_api.domain.events import EventRecord


class EventPage:
    """The events of one page, passed on one at a time as the runtime sends them.

    `next_offset` is known once the page has been read to its end: the offset of the
    next page, or None when this page is the last.
    """

    def __init__(
        self,
        offset: int,
        limit: int | None,
        kind: str | None,
        records: AsyncIterator[EventRecord],
        first: EventRecord | None,
    ) -> None:
        self.offset = offset
        self.next_offset: int | None = None
        self._limit = limit
        self._kind = kind
        self._records = records
        self._first = first

    async def __aiter__(self) -> AsyncIterator[JsonDocument]:
        matched = sent = 0
        async with aclosing(self._records) as records:
            record = self._first
            while record is not None:
                if self._kind is None or record.type == self._kind:
                    matched += 1
                    if matched > self.offset:
                        if self._limit is not None and sent >= self._limit:
                            self.next_offset = self.offset + sent
                            return
                        sent += 1
                        yield record.document
                record = await anext(records, None)


class ListEvents:
    def __init__(self, runtime: RuntimePort) -> None:
        self._runtime = runtime

    async def __call__(
        self, job_id: str, *, offset: int = 0, limit: int | None = None, type: str | None = None
    ) -> EventPage:
        records = history(self._runtime, job_id)
        # Reading the first event now reports an unknown job before any answer starts.
        first = await anext(records, None)
        return EventPage(offset, limit, type, records, first)
