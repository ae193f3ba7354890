"""ReplayDeadLetter: deliver a dead letter's message to its agent once more."""

from __future__ import annotations

from contextlib import aclosing
from dataclasses import dataclass

from mn_api.application.journal import HistoryJournal
from mn_api.application.ports import RuntimePort
from mn_api.application.use_cases._history import dead_letters
from mn_api.domain.errors import DeadLetterNotFoundError


@dataclass(frozen=True, slots=True)
class ReplayResult:
    job_id: str
    index: int
    event_index: int
    agent_id: str
    job_status: str


class ReplayDeadLetter:
    def __init__(self, runtime: RuntimePort, journal: HistoryJournal | None = None) -> None:
        self._runtime = runtime
        self._journal = journal

    async def __call__(self, job_id: str, index: int) -> ReplayResult:
        event_index = None
        async with aclosing(dead_letters(self._runtime, job_id, self._journal)) as letters:
            async for position, record in letters:
                if position == index:
                    event_index = record.index
                    break
        if event_index is None:
            raise DeadLetterNotFoundError(job_id, index)
        ack = await self._runtime.replay_dead_letter(job_id, event_index)
        if self._journal is not None:
            self._journal.reopen(job_id)  # a finished job's history grows again
        return ReplayResult(job_id, index, event_index, ack.agent_id, ack.status)
