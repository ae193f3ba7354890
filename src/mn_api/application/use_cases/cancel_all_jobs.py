"""CancelAllJobs: ask the runtime to cancel every live job at once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mn_api.application.ports import RuntimePort


class CancelAllJobs:
    def __init__(self, runtime: RuntimePort) -> None:
        self._runtime = runtime

    async def __call__(self) -> dict[str, Any]:
        """The core's account (`cancelled_count`, `job_ids`); a count is always given."""
        result = (await self._runtime.cancel_all_jobs()).value
        answer = dict(result) if isinstance(result, Mapping) else {}
        if not isinstance(answer.get("cancelled_count"), int):
            ids = answer.get("job_ids")
            answer["cancelled_count"] = len(ids) if isinstance(ids, list) else 0
        return answer
