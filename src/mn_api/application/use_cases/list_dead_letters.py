"""ListDeadLetters: the messages a job's agents could not take, with where they stand."""

from __future__ import annotations

from typing import Any

from mn_api.application.ports import RuntimePort
from mn_api.application.use_cases._history import dead_letters
from mn_api.domain.events import dead_letter_view


class ListDeadLetters:
    def __init__(self, runtime: RuntimePort) -> None:
        self._runtime = runtime

    async def __call__(self, job_id: str) -> dict[str, Any]:
        data = [
            dead_letter_view(index, record.index, record.value)
            async for index, record in dead_letters(self._runtime, job_id)
        ]
        return {"job_id": job_id, "data": data}
