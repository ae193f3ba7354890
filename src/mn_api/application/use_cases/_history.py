"""Reading a job's history through the runtime, shared by the use cases that page it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

from mn_api.application.journal import HistoryJournal
from mn_api.application.ports import RuntimePort
from mn_api.domain.events import DEAD_LETTER, EventRecord


async def history(runtime: RuntimePort, job_id: str) -> AsyncIterator[EventRecord]:
    """The job's recorded events, oldest first, one at a time.

    A core may answer an unknown job with an empty stream; when nothing came, the job is
    looked up so that an unknown id is reported as such.
    """
    seen = False
    async with aclosing(runtime.stream_events(job_id, follow=False)) as stream:
        async for item in stream:
            if isinstance(item, EventRecord):
                seen = True
                yield item
    if not seen:
        await runtime.get_job(job_id)


async def dead_letters(
    runtime: RuntimePort, job_id: str, journal: HistoryJournal | None = None
) -> AsyncIterator[tuple[int, EventRecord]]:
    """Each `dead_letter` event with its position among the job's dead letters."""
    kept = await journal.read(job_id) if journal is not None else None
    if kept is not None:
        # As the journal holds them now: one let go or read anew meanwhile changes nothing.
        for index, record in enumerate(kept.records(list(kept.dead_letters))):
            yield index, record
        return
    index = 0
    async with aclosing(history(runtime, job_id)) as records:
        async for record in records:
            if record.type == DEAD_LETTER:
                yield index, record
                index += 1
