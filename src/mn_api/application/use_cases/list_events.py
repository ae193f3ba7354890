"""ListEvents: one page of a job's history, optionally of one event type."""

from __future__ import annotations

from contextlib import aclosing
from dataclasses import dataclass

from mn_api.application.ports import RuntimePort
from mn_api.application.use_cases._history import history
from mn_api.domain.documents import JsonDocument


@dataclass(frozen=True, slots=True)
class EventPage:
    data: list[JsonDocument]
    offset: int
    next_offset: int | None


class ListEvents:
    def __init__(self, runtime: RuntimePort) -> None:
        self._runtime = runtime

    async def __call__(
        self, job_id: str, *, offset: int = 0, limit: int | None = None, type: str | None = None
    ) -> EventPage:
        data: list[JsonDocument] = []
        matched = 0
        more = False
        async with aclosing(history(self._runtime, job_id)) as records:
            async for record in records:
                if type is not None and record.type != type:
                    continue
                matched += 1
                if matched <= offset:
                    continue
                if limit is not None and len(data) >= limit:
                    more = True
                    break
                data.append(record.document)
        return EventPage(data, offset, offset + len(data) if more else None)
