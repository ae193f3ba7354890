"""GetRuntimeMetrics: the runtime's own metrics, or counts derived from its summary."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from mn_api.application.ports import RuntimePort


class GetRuntimeMetrics:
    def __init__(self, runtime: RuntimePort) -> None:
        self._runtime = runtime

    async def __call__(self) -> Mapping[str, Any]:
        summary = (await self._runtime.system_summary()).value
        summary = summary if isinstance(summary, Mapping) else {}
        metrics = summary.get("metrics")
        if isinstance(metrics, Mapping):
            return metrics
        jobs = [j for j in summary.get("jobs") or () if isinstance(j, Mapping)]
        by_status = Counter(str(j.get("status", "unknown")) for j in jobs)
        return {
            "jobs": {"total": len(jobs), "by_status": dict(sorted(by_status.items()))},
            "nodes": {"total": len(summary.get("nodes") or ())},
            "source": "system_summary",
        }
