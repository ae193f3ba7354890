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

    async def __call__(self, job_id: str) -> AsyncIterator[dict[str, Any]]:
        """The job's dead letters, oldest first: from the journal's index of them, else found
        in one pass over its history."""
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
