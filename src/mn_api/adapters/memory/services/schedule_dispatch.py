"""The schedule dispatcher: what starts a schedule's jobs (or a definition's runs).

A pass (`tick`) closes the windows that ended and dispatches every occurrence due; a
dispatch holds a lease for its occurrence, starts the child, and records a dispatch entry
and the counters on the schedule. The state is the Schedules group's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from mn_api.adapters.memory.model import _judge
from mn_api.adapters.memory.services import schedule_policy as policy
from mn_api.adapters.memory.services._base import CoreRefusal, dumps, new_id
from mn_api.domain.errors import DomainError

if TYPE_CHECKING:
    from mn_api.adapters.memory.runtime import InMemoryRuntime

log = logging.getLogger("mn_api.memory")

StartRun = Callable[[dict[str, Any]], Awaitable[str]]
DISPATCHES_KEPT = 50
TICK_SECONDS = 1.0
TERMINAL = ("completed", "failed", "cancelled")
TALLY = ("checked", "dispatched", "skipped", "failed", "missed", "blocked")


def _tally(**counts: int) -> dict[str, int]:
    return {key: counts.get(key, 0) for key in TALLY}


def _merged(results: list[dict[str, int]]) -> dict[str, Any]:
    total = {**_tally(), "windows_closed": 0}
    for result in results:
        for key, count in result.items():
            total[key] = total.get(key, 0) + count
    return total


def _active_key(record: Mapping[str, Any]) -> str:
    return "active_run_ids" if "active_run_ids" in record else "active_job_ids"


class ScheduleDispatcher:
    """The dispatching half of the Schedules group."""

    _runtime: InMemoryRuntime
    records: dict[str, dict[str, Any]]
    _payloads: dict[str, dict[str, bytes]]
    _starters: dict[str, StartRun]
    _leases: set[str]
    _epochs: int
    _ticker: asyncio.Task[None] | None

    async def close(self) -> None:
        """Stop the ticker (the runtime closes)."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None

    # ------------------------------------------------------------------ the ticker

    async def tick(self, now: datetime | None = None) -> dict[str, Any]:
        """One pass of the dispatcher: windows that ended are closed, then every schedule
        with an occurrence due is dispatched (or marked missed or blocked). The tallies."""
        now = now or self._now()
        results = [await self._close_window(s, d) for s, d in self._ended_windows(now)]
        for schedule_id in sorted(self.records):
            record = self.records.get(schedule_id)
            if record is not None and self._due(record, now):
                results.append(await self._process_due(record, now))
        return _merged(results)

    def _ensure_ticker(self) -> None:
        if self._ticker is None and self._runtime._auto_run:
            self._ticker = asyncio.get_running_loop().create_task(
                self._tick_forever(), name="mn-memory-schedules"
            )

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            try:
                await self.tick()
            except Exception as err:
                # The next pass tries again: a dispatcher that stopped would start nothing.
                log.warning("a pass of the schedule dispatcher failed: %s", type(err).__name__)

    @staticmethod
    def _due(record: Mapping[str, Any], now: datetime) -> bool:
        due = policy.parse_time(record.get("next_run_at"))
        return (
            record.get("enabled") is True
            and record.get("status") in ("active", "running")
            and due is not None
            and due <= now
        )

    async def _process_due(self, record: dict[str, Any], now: datetime) -> dict[str, int]:
        if record.get("kind") == "resource_wait":
            return await self._resource_wait(record, now)
        if policy.missed(record, now):
            record["next_run_at"] = policy.next_run_at(record, now)
            record["last_missed_at"] = policy.iso_ms(now)
            self._count(record, "missed")
            self._touch(record)
            return _tally(checked=1, missed=1)
        if await self._overlapping(record):
            return self._blocked(record, "overlap")
        snapshot = dict(record)
        results = [
            await self._dispatch(record["schedule_id"], instance)
            for instance in policy.due_instances(snapshot, now)
        ]
        total = _merged(results)
        current = self.records.get(record["schedule_id"])
        if total["dispatched"] > 0 and snapshot.get("kind") == "periodic" and current:
            current["next_run_at"] = policy.next_run_at(snapshot, now + timedelta(seconds=60))
            self._touch(current)
        total.pop("windows_closed")
        return total

    async def _resource_wait(self, record: dict[str, Any], now: datetime) -> dict[str, int]:
        if await self._overlapping(record):
            return self._postpone(record, now, "overlap", {})
        ready, availability = self._availability(record.get("manifest") or {})
        if not ready:
            return self._postpone(record, now, availability.get("reason"), availability)
        results = [
            await self._dispatch(record["schedule_id"], instance)
            for instance in policy.due_instances(dict(record), now)
        ]
        total = _merged(results)
        total.pop("windows_closed")
        return total

    def _postpone(
        self, record: dict[str, Any], now: datetime, reason: Any, availability: dict[str, Any]
    ) -> dict[str, int]:
        retry = record.get("retry_interval_ms", policy.RETRY_INTERVAL_MS)
        record["next_run_at"] = policy.iso_ms(now + timedelta(milliseconds=retry))
        record["last_blocked_reason"] = reason or "resources unavailable"
        record["resource_availability"] = availability
        self._count(record, "blocked")
        self._touch(record)
        return _tally(checked=1, blocked=1)

    def _blocked(self, record: dict[str, Any], reason: str) -> dict[str, int]:
        record["last_blocked_reason"] = reason
        self._touch(record)
        return _tally(checked=1, blocked=1)

    def _ended_windows(self, now: datetime) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        ended = []
        for _, record in sorted(self.records.items()):
            if (record.get("window") or {}).get("end_action") != "cancel":
                continue
            for entry in record.get("dispatches", []):
                end = policy.parse_time(entry.get("window_end_at"))
                if entry.get("status") == "submitted" and end is not None and end <= now:
                    ended.append((record, entry))
        return ended

    async def _close_window(self, record: dict[str, Any], entry: dict[str, Any]) -> dict[str, int]:
        child = entry.get("job_id") or entry.get("run_id")
        if isinstance(child, str):
            with contextlib.suppress(DomainError):
                await self._runtime.cancel_job(child)
        entry.update(status="window_closed", closed_at=policy.iso_ms(self._now()))
        key = _active_key(record)
        record[key] = [i for i in record.get(key, []) if i != child]
        self._touch(record)
        return {**_tally(checked=1), "windows_closed": 1}

    # ------------------------------------------------------------------ dispatching

    async def _dispatch_event(
        self, record: dict[str, Any], event: dict[str, Any]
    ) -> dict[str, int]:
        if await self._overlapping(record):
            return self._blocked(record, "overlap")
        instance = {
            "scheduled_for": policy.iso_ms(self._now()),
            "reason": "event",
            "event": event,
        }
        return await self._dispatch(record["schedule_id"], instance)

    async def _dispatch(self, schedule_id: str, instance: dict[str, Any]) -> dict[str, int]:
        """One occurrence, under its lease: the same occurrence dispatched twice at once
        is skipped the second time."""
        token = hashlib.sha256(
            orjson.dumps(
                [
                    schedule_id,
                    instance.get("scheduled_for"),
                    instance.get("reason"),
                    (instance.get("event") or {}).get("event_id"),
                ]
            )
        ).hexdigest()
        if token in self._leases:
            return _tally(checked=1, skipped=1)
        self._leases.add(token)
        self._epochs += 1
        lease = {"owner": f"{self._runtime.node.name}:{self._epochs}", "epoch": self._epochs}
        try:
            record = self.records.get(schedule_id)
            if record is None:
                return _tally(checked=1, failed=1)
            return await self._dispatch_child(record, instance, lease)
        finally:
            self._leases.discard(token)

    async def _dispatch_child(
        self, record: dict[str, Any], instance: dict[str, Any], lease: dict[str, Any]
    ) -> dict[str, int]:
        dispatch_id = new_id("dispatch_")
        metadata = {
            key: value
            for key, value in {
                "schedule_id": record["schedule_id"],
                "schedule_name": record.get("name"),
                "schedule_kind": record.get("kind"),
                "dispatch_id": dispatch_id,
                "scheduled_for": instance.get("scheduled_for"),
                "reason": instance.get("reason"),
                "payload": instance.get("payload", {}),
                "event": instance.get("event"),
                "lease": lease,
            }.items()
            if value not in (None, "", {})
        }
        try:
            child = await self._start(record, instance, metadata)
        except (CoreRefusal, DomainError) as refused:
            text = refused.message if isinstance(refused, CoreRefusal) else str(refused)
            await self._after_failure(record["schedule_id"], dispatch_id, instance, text)
            return _tally(checked=1, failed=1)
        await self._after_dispatch(record["schedule_id"], dispatch_id, child, instance, metadata)
        return _tally(checked=1, dispatched=1)

    async def _start(
        self, record: Mapping[str, Any], instance: Mapping[str, Any], metadata: dict[str, Any]
    ) -> str:
        starter = self._starters.get(record["schedule_id"])
        if starter is not None:
            inputs = dict(instance.get("payload") or {})
            if instance.get("event") is not None:
                inputs["event"] = instance["event"]
            return await starter(inputs)
        manifest = dict(record.get("manifest") or {})
        given = manifest.get("metadata")
        manifest["metadata"] = {**(given if isinstance(given, dict) else {})}
        manifest["metadata"]["schedule_dispatch"] = metadata
        payloads = self._payloads.get(record["schedule_id"], {})
        ack = await self._runtime.submit_job(dumps(manifest), payloads)
        return ack.job_id

    async def _after_dispatch(
        self,
        schedule_id: str,
        dispatch_id: str,
        child: str,
        instance: Mapping[str, Any],
        metadata: dict[str, Any],
    ) -> None:
        record = self.records.get(schedule_id)
        if record is None:
            return
        now = self._now()
        duration = (record.get("window") or {}).get("duration_ms")
        child_key = "run_id" if schedule_id in self._starters else "job_id"
        entry = {
            "dispatch_id": dispatch_id,
            child_key: child,
            "status": "submitted",
            "scheduled_for": instance.get("scheduled_for"),
            "reason": instance.get("reason"),
            "submitted_at": policy.iso_ms(now),
            "window_end_at": policy.iso_ms(now + timedelta(milliseconds=duration))
            if isinstance(duration, int) and duration > 0
            else None,
            "metadata": metadata,
        }
        await self._prune(record)
        self._prepend(record, {k: v for k, v in entry.items() if v is not None})
        key = _active_key(record)
        record[key] = [child, *(i for i in record.get(key, []) if i != child)]
        self._count(record, "dispatched")
        if record.get("kind") in ("delayed", "resource_wait"):
            record.update(enabled=False, status="completed", next_run_at=None)
        self._touch(record)

    async def _after_failure(
        self, schedule_id: str, dispatch_id: str, instance: Mapping[str, Any], text: str
    ) -> None:
        record = self.records.get(schedule_id)
        if record is None:
            return
        entry = {
            "dispatch_id": dispatch_id,
            "status": "failed",
            "scheduled_for": instance.get("scheduled_for"),
            "reason": text,
            "status_reason": text,
            "error": {
                "code": "scheduler.dispatch.failed",
                "component": "schedule_dispatcher",
                "severity": "ERROR",
                "message": text,
            },
            "submitted_at": policy.iso_ms(self._now()),
        }
        await self._prune(record)
        self._prepend(record, entry)
        self._count(record, "failed")
        self._touch(record)

    def _availability(self, manifest: Mapping[str, Any]) -> tuple[bool, dict[str, Any]]:
        try:
            self._runtime._check_requirements(_judge(dumps(manifest)))
        except DomainError as unmet:
            return False, {"status": "not_runnable", "reason": str(unmet)}
        nodes = len(self._runtime.live_nodes)
        return True, {"status": "available", "nodes": nodes}

    async def _overlapping(self, record: Mapping[str, Any]) -> bool:
        if record.get("prohibit_overlap") is not True:
            return False
        for child in record.get(_active_key(record), []):
            status = await self._job_status(child)
            if status is not None and status not in TERMINAL:
                return True
        return False

    async def _prune(self, record: dict[str, Any]) -> None:
        key = _active_key(record)
        live = []
        for child in record.get(key, []):
            status = await self._job_status(child)
            if status is not None and status not in TERMINAL:
                live.append(child)
        record[key] = live

    async def _job_status(self, job_id: str) -> str | None:
        try:
            document = (await self._runtime.get_job(job_id)).value
        except DomainError:
            return None
        job = document.get("job") if isinstance(document, dict) else None
        status = job.get("status") if isinstance(job, dict) else None
        return status if isinstance(status, str) else None

    @staticmethod
    def _prepend(record: dict[str, Any], entry: dict[str, Any]) -> None:
        record["dispatches"] = [entry, *record.get("dispatches", [])][:DISPATCHES_KEPT]

    @staticmethod
    def _count(record: dict[str, Any], counter: str) -> None:
        counters = record.setdefault("counters", {})
        counters[counter] = (counters.get(counter) or 0) + 1

    def _touch(self, record: dict[str, Any]) -> dict[str, Any]:
        record["updated_at"] = policy.iso_ms(self._now())
        return record

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._runtime._clock(), UTC)
