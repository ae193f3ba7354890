"""ListDeadLetters: the messages a job's agents could not take, with where they stand."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from mn_api.application.journal import HistoryJournal
from mn_api.application.ports import RuntimePort
from mn_api.application.use_cases._history import dead_letters
from mn_api.domain.events import dead_letter_view


class ListDeadLetters:
    def __init__(self, runtime: RuntimePort, journal: HistoryJournal | None = None) -> None:
        self._runtime = runtime
        self._journal = journal

    async def __call__(self, job_id: str) -> list[dict[str, Any]]:
        """The job's dead letters, oldest first (JobNotFoundError for an unknown job)."""
        async with aclosing(await self.stream(job_id)) as letters:  # type: ignore[type-var]
            return [letter async for letter in letters]

    async def stream(self, job_id: str) -> AsyncIterator[dict[str, Any]]:
        """The same, one at a time as they are found (what the HTTP route writes out as it
        goes): from the journal's index of them, else in one pass over the history. An
        unknown job fails here, before the first."""
        letters = dead_letters(self._runtime, job_id, self._journal)
        first = await anext(letters, None)  # an unknown job fails here, before any answer
        return self._views(letters, first)

    @staticmethod
    async def _views(letters: AsyncIterator[Any], first: Any) -> AsyncIterator[dict[str, Any]]:
        async with aclosing(letters):
            item = first
            while item is not None:
                index, record = item
                yield dead_letter_view(index, record.index, record.value)
                item = await anext(letters, None)
