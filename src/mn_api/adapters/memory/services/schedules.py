"""JobService schedules and trigger events (1.2.5 and newer): CreateSchedule,
UpdateSchedule, GetSchedule, ListSchedules, PauseSchedule, ResumeSchedule, DeleteSchedule,
DispatchSchedule, EmitTriggerEvent and ListTriggerEvents.

A schedule starts a v1 job of its manifest (with `metadata.schedule_dispatch` saying why)
each time it is dispatched: by hand, when a trigger event matches it, or when a background
ticker on the runtime's loop finds a periodic, delayed or resource_wait occurrence due (the
ticker runs while the runtime drives itself; `tick()` is the same pass, for tests with a
clock of their own). Schedules bound to a job definition (`create_for_definition`) start a
run of the definition instead. What is normalised and refused is in `schedule_policy`;
docs/LATER_SERVICES.md says where each behaviour comes from.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from mn_api.adapters.memory.model import _judge
from mn_api.adapters.memory.services import schedule_policy as policy
from mn_api.adapters.memory.services._base import (
    JOB_V1,
    Answer,
    Request,
    Streaming,
    Unary,
    dumps,
    invalid,
    lenient_object,
    new_id,
    quoted,
    versioned,
)
from mn_api.adapters.memory.services.schedule_dispatch import (
    ScheduleDispatcher,
    StartRun,
    _merged,
)
from mn_api.domain.errors import ManifestInvalidError
from mn_api.domain.payload_paths import payload_path_problem

if TYPE_CHECKING:
    from mn_api.adapters.memory.runtime import InMemoryRuntime

EVENTS_KEPT = 1000
# What UpdateSchedule keeps of the record (everything else is normalised again).
KEPT_ON_UPDATE = (
    "schedule_id",
    "manifest",
    "bundle_ref",
    "source",
    "dispatches",
    "active_job_ids",
    "counters",
    "created_at",
    "job_id",
    "owner_node",
    "active_run_ids",
)


def bundle_ref(manifest: Mapping[str, Any], payloads: Mapping[str, bytes]) -> dict[str, Any]:
    """Where the core keeps a schedule's bundle: by the fingerprint of its contents."""
    digest = hashlib.sha256(orjson.dumps(manifest, option=orjson.OPT_SORT_KEYS))
    for path in sorted(payloads):
        digest.update(path.encode("utf-8", "surrogatepass") + b"\0" + payloads[path])
    return {
        "bundle_fingerprint": digest.hexdigest(),
        "bundle_storage": "archive",
        "bundle_bytes": len(orjson.dumps(manifest)) + sum(len(p) for p in payloads.values()),
        "graph_id": manifest.get("graph_id"),
        "manifest_version": manifest.get("manifest_version"),
    }


def read_bundle(request: Request) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The request's manifest (judged as SubmitJob judges one) and payloads; the core's
    refusal (INVALID_ARGUMENT, in its `inspect` form) when either cannot be a bundle."""
    text = request.get("manifest_json", "")
    try:
        _judge(text)
    except ManifestInvalidError as refused:
        raise invalid(policy.inspect_list(refused.errors or [str(refused)])) from None
    payloads = dict(request.get("payloads") or {})
    for path in payloads:
        if payload_path_problem(path) is not None:
            text_path = policy.inspect_string(path)
            raise invalid(
                quoted(f"payload path must be relative and stay inside payloads/: {text_path}")
            )
    return orjson.loads(text), payloads


class Schedules(ScheduleDispatcher):
    name: ClassVar[str] = "schedules"

    def __init__(self, runtime: InMemoryRuntime) -> None:
        self._runtime = runtime
        self.records: dict[str, dict[str, Any]] = {}
        self.events: deque[dict[str, Any]] = deque(maxlen=EVENTS_KEPT)
        self._payloads: dict[str, dict[str, bytes]] = {}
        self._starters: dict[str, StartRun] = {}
        self._leases: set[str] = set()
        self._epochs = 0
        self._ticker: asyncio.Task[None] | None = None

    def unary(self) -> Mapping[str, Unary]:
        return {
            JOB_V1 + "CreateSchedule": self.create,
            JOB_V1 + "UpdateSchedule": self.update,
            JOB_V1 + "GetSchedule": self.get,
            JOB_V1 + "ListSchedules": self.list,
            JOB_V1 + "PauseSchedule": self.pause,
            JOB_V1 + "ResumeSchedule": self.resume,
            JOB_V1 + "DeleteSchedule": self.delete,
            JOB_V1 + "DispatchSchedule": self.dispatch,
            JOB_V1 + "EmitTriggerEvent": self.emit,
            JOB_V1 + "ListTriggerEvents": self.list_events,
        }

    def streaming(self) -> Mapping[str, Streaming]:
        return {}

    def reset(self) -> None:
        self.records.clear()
        self.events.clear()
        self._payloads.clear()
        self._starters.clear()

    # ------------------------------------------------------------------ the RPCs

    async def create(self, request: Request) -> Answer:
        manifest, payloads = read_bundle(request)
        attrs = lenient_object(request.get("schedule_json", "")) or manifest.get("schedule", {})
        record = self._new_record(manifest, attrs, lenient_object(request.get("source_json", "")))
        record["bundle_ref"] = bundle_ref(manifest, payloads)
        record["active_job_ids"] = []
        self._store(record, payloads)
        return _answer(record)

    async def create_for_definition(
        self,
        *,
        job_id: str,
        owner_node: str,
        manifest: dict[str, Any],
        schedule_json: str,
        source_json: str,
        start_run: StartRun,
    ) -> dict[str, Any]:
        """A schedule of a job definition: each dispatch calls `start_run(inputs)` (the
        run's id back) instead of submitting a job. The record, as CreateSchedule keeps it
        (with `job_id`, `owner_node` and `active_run_ids`); CoreRefusal as CreateSchedule."""
        attrs = lenient_object(schedule_json) or manifest.get("schedule", {})
        record = self._new_record(manifest, attrs, lenient_object(source_json))
        record.update(
            bundle_ref=bundle_ref(manifest, {}),
            job_id=job_id,
            owner_node=owner_node,
            active_run_ids=[],
        )
        self._starters[record["schedule_id"]] = start_run
        self._store(record, {})
        return copy.deepcopy(record)

    async def update(self, request: Request) -> Answer:
        existing = self._record(request.get("schedule_id", ""))
        attrs = lenient_object(request.get("attrs_json", ""))
        normalized = self._normalize({**existing, **attrs}, existing.get("manifest"))
        kept = {key: existing[key] for key in KEPT_ON_UPDATE if key in existing}
        record = {**normalized, **kept}
        self.records[record["schedule_id"]] = record
        return _answer(self._touch(record))

    async def get(self, request: Request) -> Answer:
        return _answer(self._record(request.get("schedule_id", "")))

    async def list(self, request: Request) -> Answer:
        query = lenient_object(request.get("query_json", ""))
        wanted = {
            key: value
            for key, value in query.items()
            if (key in ("kind", "status") and isinstance(value, str) and value)
            or (key == "enabled" and isinstance(value, bool))
        }
        data = [
            record
            for _, record in sorted(self.records.items())
            if all(record.get(key) == value for key, value in wanted.items())
        ]
        return _answer({"data": data})

    async def pause(self, request: Request) -> Answer:
        record = self._record(request.get("schedule_id", ""))
        record.update(status="paused", enabled=False, last_status_reason=request.get("reason", ""))
        return _answer(self._touch(record))

    async def resume(self, request: Request) -> Answer:
        record = self._record(request.get("schedule_id", ""))
        record.update(self._normalize({**record, "enabled": True}, record.get("manifest")))
        return _answer(self._touch(record))

    async def delete(self, request: Request) -> Answer:
        schedule_id = request.get("schedule_id", "")
        self.records.pop(schedule_id, None)
        self._payloads.pop(schedule_id, None)
        self._starters.pop(schedule_id, None)
        return _answer({"schedule_id": schedule_id, "status": "deleted"})

    async def dispatch(self, request: Request) -> Answer:
        record = self._record(request.get("schedule_id", ""))
        instance = {
            "scheduled_for": policy.iso_ms(self._now()),
            "reason": request.get("reason", ""),
            "payload": lenient_object(request.get("payload_json", "")),
        }
        return _answer(await self._dispatch(record["schedule_id"], instance))

    async def emit(self, request: Request) -> Answer:
        event = {
            "event_id": new_id("event_"),
            "event_type": request.get("event_type", ""),
            "source": request.get("source") or "api",
            "payload": lenient_object(request.get("payload_json", "")),
            "created_at": policy.iso_ms(self._now()),
        }
        self.events.appendleft(event)
        results = []
        for schedule_id in sorted(self.records):
            record = self.records.get(schedule_id)
            if record is not None and policy.event_matches(record, event):
                results.append(await self._dispatch_event(record, event))
        return _answer({**_merged(results), "event": event})

    async def list_events(self, request: Request) -> Answer:
        # LRANGE 0..max(limit, 1) - 1: a limit of 0 (or none) lists one event.
        count = max(int(request.get("limit", 0) or 0), 1)
        return _answer({"data": list(self.events)[:count]})

    # ------------------------------------------------------------------ records

    def _new_record(
        self, manifest: Mapping[str, Any], attrs: Any, source: dict[str, Any]
    ) -> dict[str, Any]:
        record = self._normalize(attrs, manifest)
        if record.get("kind") == "resource_wait":
            _, availability = self._availability(manifest)
            if availability.get("status") == "not_runnable":
                raise invalid(
                    quoted(
                        "resource requirements cannot be satisfied by the current cluster: "
                        f"{availability['reason']} ({availability['status']})"
                    )
                )
            record["resource_availability"] = availability
        stamp = policy.iso_ms(self._now())
        record.update(
            schedule_id=new_id("sched_"),
            manifest=dict(manifest),
            source=source,
            dispatches=[],
            counters={"dispatched": 0, "missed": 0, "failed": 0},
            created_at=stamp,
            updated_at=stamp,
        )
        return record

    def _store(self, record: dict[str, Any], payloads: dict[str, bytes]) -> None:
        self.records[record["schedule_id"]] = record
        self._payloads[record["schedule_id"]] = payloads
        self._ensure_ticker()

    def _normalize(self, raw: Any, manifest: Any) -> dict[str, Any]:
        try:
            return policy.normalize(
                raw, manifest if isinstance(manifest, dict) else None, self._now()
            )
        except policy.ScheduleInvalid as refused:
            raise invalid(policy.inspect_list(refused.problems)) from None

    def _record(self, schedule_id: str) -> dict[str, Any]:
        record = self.records.get(schedule_id)
        if record is None:
            # The core answers its store's text through `inspect`, as INVALID_ARGUMENT.
            raise invalid(quoted(f"schedule {schedule_id} was not found"))
        return record


def _answer(document: Mapping[str, Any]) -> Answer:
    return {"result_json": dumps(versioned(document)), "version": 1}
