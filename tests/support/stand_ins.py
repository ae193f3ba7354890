"""Stand-ins for simulation groups other groups call, for tests of those callers only."""

from __future__ import annotations

from typing import Any

import orjson

from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.adapters.memory.services import CoreRefusal
from mn_api.adapters.memory.services._base import JOB_V1


class StandInSchedules:
    """Stands in for the schedules group, as the jobs_v2 group calls it (in tests only):
    `create_for_definition`, and the first job service's PauseSchedule and DeleteSchedule."""

    name = "schedules"

    @classmethod
    def install(cls, runtime: InMemoryRuntime) -> StandInSchedules:
        """In place of the runtime's schedules group, if it has one."""
        stand_in = cls()
        services = runtime.services
        services.groups = [g for g in services.groups if g.name != "schedules"] + [stand_in]
        services._unary.update(stand_in.unary())
        return stand_in

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.start_run: Any = None

    def unary(self) -> dict[str, Any]:
        return {JOB_V1 + "PauseSchedule": self._pause, JOB_V1 + "DeleteSchedule": self._delete}

    def streaming(self) -> dict[str, Any]:
        return {}

    def reset(self) -> None:
        self.records.clear()

    async def _pause(self, request: Any) -> dict[str, Any]:
        self.calls.append(("pause", request["schedule_id"]))
        return {"result_json": "{}", "version": 1}

    async def _delete(self, request: Any) -> dict[str, Any]:
        self.calls.append(("delete", request["schedule_id"]))
        return {"result_json": "{}", "version": 1}

    async def create_for_definition(self, **given: Any) -> dict[str, Any]:
        schedule = orjson.loads(given["schedule_json"])
        if "crons" not in schedule:
            raise CoreRefusal("INVALID_ARGUMENT", '["periodic schedules require cron or crons"]')
        self.start_run = given["start_run"]
        schedule_id = f"sched_{len(self.records) + 1}"
        record = {
            "schedule_id": schedule_id,
            "job_id": given["job_id"],
            "owner_node": given["owner_node"],
            "manifest": given["manifest"],
            "source": orjson.loads(given["source_json"]),
            "dispatches": [{"dispatch_id": "d1"}],
            "active_run_ids": [],
            "version": 1,
        }
        self.records[schedule_id] = record
        return record
