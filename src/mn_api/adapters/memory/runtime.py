"""InMemoryRuntime: runs jobs the way the core does, one message hop per step, in memory."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from mn_api.application.ports import JobAck, ReplayAck, RuntimePort
from mn_api.domain import events as ev
from mn_api.domain.documents import JsonDocument
from mn_api.domain.errors import (
    AlreadyExistsError,
    InvalidArgumentError,
    JobNotFoundError,
    ManifestInvalidError,
)
from mn_api.domain.events import EventRecord, Heartbeat, iso_timestamp
from mn_api.domain.manifest import Manifest, parse_manifest, validate_manifest
from mn_api.domain.status import JobAction, JobStatus, check_transition

NODE_NAME = "mn-memory@localhost"
POOL_CAPACITY = 8
RECENT_EVENTS = 20
MAX_HOPS = 64
START_MESSAGE = {"type": "start"}


def _loads(raw: bytes) -> Any:
    return orjson.loads(raw)


@dataclass(slots=True)
class _Delivery:
    source: str | None
    target: str
    type: str
    message: Any
    hops: int
    ready_at: float
    replay: bool = False


@dataclass(slots=True)
class _Agent:
    node_id: str
    agent_type: str
    type: str | None
    outbound: list[str]
    fail: bool
    drop_first: int
    delay_seconds: float
    processed: int = 0
    mailbox: int = 0
    dropped: int = 0


@dataclass(slots=True)
class _Job:
    job_id: str
    manifest: Manifest
    raw_manifest: Mapping[str, Any]
    payload_keys: list[str]
    submitted_at: str
    updated_at: str
    agents: dict[str, _Agent]
    status: JobStatus = JobStatus.PENDING
    stage: int = 0
    paused_from: JobStatus | None = None
    events: list[bytes] = field(default_factory=list)
    base: int = 0
    inflight: deque[_Delivery] = field(default_factory=deque)
    messages: int = 0
    dead_letters: int = 0
    replayed: set[int] = field(default_factory=set)
    result: dict[str, Any] | None = None
    changed: asyncio.Event | None = None
    # The serialized details, kept until the job next changes: readers far outnumber steps.
    details: bytes | None = None

    @property
    def end(self) -> int:
        return self.base + len(self.events)


class InMemoryRuntime(RuntimePort):
    """The core's behaviour without the core: validation, scheduling, messaging, faults.

    Everything happens in `step()`, which advances every unpaused job by one hop; a
    background task calls it every `step_seconds` once `start()` ran. Tests construct it
    with `auto_run=False` and call `step()` themselves, with a clock of their own.
    """

    def __init__(
        self,
        *,
        step_seconds: float = 0.05,
        clock: Callable[[], float] = time.time,
        auto_run: bool = True,
        max_jobs: int = 10_000,
        max_events_per_job: int = 200_000,
        max_inflight_per_job: int = 100_000,
    ) -> None:
        self._step_seconds = step_seconds
        self._clock = clock
        self._auto_run = auto_run
        self._max_jobs = max_jobs
        self._max_events = max_events_per_job
        self._max_inflight = max_inflight_per_job
        self._jobs: dict[str, _Job] = {}
        self._active: dict[str, _Job] = {}
        # Finished jobs in the order they finished: the first to go when the cap is reached.
        self._finished: dict[str, None] = {}
        self._driver: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        if self._auto_run and self._driver is None:
            self._wake = asyncio.Event()
            self._driver = asyncio.create_task(self._drive(), name="mn-memory-runtime")

    async def close(self) -> None:
        if self._driver is not None:
            self._driver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._driver
            self._driver = None

    async def _drive(self) -> None:
        assert self._wake is not None
        while True:
            if not self._active:
                self._wake.clear()
                await self._wake.wait()
                continue
            progressed = self.step()
            pause = self._step_seconds if progressed else max(self._step_seconds, 0.005)
            await asyncio.sleep(pause)

    def _kick(self) -> None:
        if self._wake is not None:
            self._wake.set()

    # -- the simulation --------------------------------------------------------------

    def _now(self) -> str:
        return iso_timestamp(self._clock())

    def _emit(self, job: _Job, kind: str, agent_id: str | None, payload: Mapping[str, Any]) -> None:
        stamp = self._now()
        job.updated_at = stamp
        job.details = None
        job.events.append(
            orjson.dumps(
                {"timestamp": stamp, "type": kind, "agent_id": agent_id, "payload": payload}
            )
        )
        overflow = len(job.events) - self._max_events
        if overflow > self._max_events // 10:
            del job.events[:overflow]
            job.base += overflow
        if job.changed is not None:
            job.changed.set()
            job.changed = None

    def _set_status(self, job: _Job, status: JobStatus) -> None:
        job.status = status
        job.details = None
        if status.is_terminal:
            self._finished[job.job_id] = None
        else:
            self._finished.pop(job.job_id, None)
        if status.is_terminal or status is JobStatus.PAUSED:
            self._active.pop(job.job_id, None)
        else:
            self._active[job.job_id] = job
            self._kick()

    def step(self) -> bool:
        """Advance every unpaused job by one step; answers whether anything happened."""
        progressed = False
        now = self._clock()
        for job in list(self._active.values()):
            progressed |= self._advance(job, now)
        return progressed

    def run_until_idle(self, max_steps: int = 10_000) -> int:
        """Step until no job can move any more; answers how many steps ran."""
        steps = 0
        while self._active and steps < max_steps and self.step():
            steps += 1
        return steps

    def _advance(self, job: _Job, now: float) -> bool:
        if job.stage == 0:
            job.stage = 1
            self._emit(job, ev.JOB_VALIDATED, None, {"graph_id": job.manifest.graph_id})
            return True
        if job.stage == 1:
            job.stage = 2
            self._set_status(job, JobStatus.QUEUED)
            self._emit(job, ev.JOB_SCHEDULED, None, {"node": NODE_NAME})
            return True
        if job.stage == 2:
            job.stage = 3
            self._set_status(job, JobStatus.RUNNING)
            self._emit(
                job, ev.JOB_RUNNING, None, {"root_agent_ids": list(job.manifest.entrypoints)}
            )
            for entry in job.manifest.entrypoints:
                inputs = job.manifest.initial_inputs.get(entry) or [START_MESSAGE]
                for message in inputs:
                    self._enqueue(job, None, entry, "initial_input", message, 0, now)
            return True
        return self._deliver_ready(job, now)

    def _enqueue(
        self,
        job: _Job,
        source: str | None,
        target: str,
        kind: str,
        message: Any,
        hops: int,
        now: float,
        *,
        replay: bool = False,
    ) -> None:
        agent = job.agents[target]
        delivery = _Delivery(source, target, kind, message, hops, now + agent.delay_seconds, replay)
        if len(job.inflight) >= self._max_inflight:
            self._dead_letter(job, delivery, "mailbox_full")
            return
        agent.mailbox += 1
        job.details = None
        job.inflight.append(delivery)

    def _deliver_ready(self, job: _Job, now: float) -> bool:
        progressed = False
        for _ in range(len(job.inflight)):
            if job.status is not JobStatus.RUNNING:
                break
            delivery = job.inflight.popleft()
            if delivery.ready_at > now:
                job.inflight.append(delivery)
                continue
            progressed = True
            self._deliver(job, delivery, now)
        if job.status is JobStatus.RUNNING and not job.inflight and not job.manifest.daemon:
            self._finish(job, JobStatus.COMPLETED, ev.JOB_COMPLETED, {"result": self._result(job)})
            progressed = True
        return progressed

    def _deliver(self, job: _Job, delivery: _Delivery, now: float) -> None:
        agent = job.agents[delivery.target]
        agent.mailbox -= 1
        if delivery.hops > MAX_HOPS:
            self._dead_letter(job, delivery, "hop_limit_exceeded")
            return
        if not delivery.replay and agent.dropped < agent.drop_first:
            agent.dropped += 1
            self._dead_letter(job, delivery, "simulated_drop")
            return
        agent.processed += 1
        job.messages += 1
        self._emit(
            job,
            ev.AGENT_MESSAGE_RECEIVED,
            agent.node_id,
            {
                "from": delivery.source,
                "to": agent.node_id,
                "type": delivery.type,
                "message": delivery.message,
            },
        )
        if agent.fail:
            self._finish(
                job,
                JobStatus.FAILED,
                ev.JOB_FAILED,
                {"agent_id": agent.node_id, "reason": "simulated_failure"},
            )
            return
        for edge in job.manifest.edges:
            if edge.from_node == agent.node_id:
                self._enqueue(
                    job,
                    agent.node_id,
                    edge.to_node,
                    edge.message_type,
                    delivery.message,
                    delivery.hops + 1,
                    now,
                )

    def _dead_letter(self, job: _Job, delivery: _Delivery, reason: str) -> None:
        job.dead_letters += 1
        envelope = {"from": delivery.source, "to": delivery.target, "type": delivery.type}
        self._emit(
            job,
            ev.DEAD_LETTER,
            delivery.target,
            {
                "agent_id": delivery.target,
                "reason": reason,
                "message": {"envelope": envelope, "body": delivery.message},
            },
        )

    def _finish(self, job: _Job, status: JobStatus, kind: str, payload: Mapping[str, Any]) -> None:
        for delivery in job.inflight:
            job.agents[delivery.target].mailbox -= 1
        job.inflight.clear()
        self._set_status(job, status)
        if status is JobStatus.COMPLETED:
            job.result = payload.get("result")
        self._emit(job, kind, None, payload)

    def _result(self, job: _Job) -> dict[str, Any]:
        return {"messages_processed": job.messages, "dead_letters": job.dead_letters}

    def seed(self, jobs: int, events_per_job: int) -> list[str]:
        """Preload finished jobs with long histories (for benchmarks); answers their ids."""
        manifest = {
            "manifest_version": "1",
            "graph_id": "seeded",
            "job_name": "seeded history",
            "nodes": [
                {"node_id": "source", "agent_type": "sensor"},
                {"node_id": "sink", "agent_type": "aggregator"},
            ],
            "edges": [{"from_node": "source", "to_node": "sink", "message_type": "reading"}],
            "entrypoints": ["source"],
        }
        parsed = parse_manifest(manifest)
        ids = []
        for _ in range(jobs):
            job = self._new_job(parsed, manifest, {})
            self._emit(job, ev.JOB_PENDING, None, {"graph_id": "seeded", "payload_count": 0})
            self._emit(job, ev.JOB_VALIDATED, None, {"graph_id": "seeded"})
            self._emit(job, ev.JOB_SCHEDULED, None, {"node": NODE_NAME})
            self._emit(job, ev.JOB_RUNNING, None, {"root_agent_ids": ["source"]})
            sink = job.agents["sink"]
            for n in range(max(events_per_job - 5, 0)):
                sink.processed += 1
                job.messages += 1
                self._emit(
                    job,
                    ev.AGENT_MESSAGE_RECEIVED,
                    "sink",
                    {"from": "source", "to": "sink", "type": "reading", "message": {"n": n}},
                )
            job.stage = 3
            self._finish(job, JobStatus.COMPLETED, ev.JOB_COMPLETED, {"result": self._result(job)})
            ids.append(job.job_id)
        self._evict()
        return ids

    def _new_job(
        self, manifest: Manifest, raw: Mapping[str, Any], payloads: Mapping[str, bytes]
    ) -> _Job:
        now = self._clock()
        job_id = f"{manifest.graph_id}-{int(now * 1000)}-{secrets.token_hex(6)}"
        agents = {
            node.node_id: _Agent(
                node_id=node.node_id,
                agent_type=node.agent_type,
                type=node.type,
                outbound=[e.to_node for e in manifest.edges if e.from_node == node.node_id],
                fail=bool(_simulate(node.config).get("fail", False)),
                drop_first=int(_simulate(node.config).get("drop_first", 0)),
                delay_seconds=int(_simulate(node.config).get("delay_ms", 0)) / 1000,
            )
            for node in manifest.nodes
        }
        stamp = iso_timestamp(now)
        job = _Job(job_id, manifest, raw, sorted(payloads), stamp, stamp, agents)
        self._jobs[job_id] = job
        self._set_status(job, JobStatus.PENDING)
        return job

    # -- the port --------------------------------------------------------------------

    def _job(self, job_id: str) -> _Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise JobNotFoundError(job_id)
        return job

    async def submit_job(self, manifest_json: str, payloads: Mapping[str, bytes]) -> JobAck:
        try:
            raw = orjson.loads(manifest_json)
        except orjson.JSONDecodeError as err:
            raise ManifestInvalidError([f"manifest_json is not valid JSON: {err}"]) from err
        errors = validate_manifest(raw)
        if errors:
            raise ManifestInvalidError(errors)
        job = self._new_job(parse_manifest(raw), raw, payloads)
        self._emit(
            job,
            ev.JOB_PENDING,
            None,
            {"graph_id": job.manifest.graph_id, "payload_count": len(payloads)},
        )
        self._evict()
        return JobAck(job.job_id, job.status.value)

    def _evict(self) -> None:
        while len(self._jobs) > self._max_jobs and self._finished:
            job_id = next(iter(self._finished))
            del self._finished[job_id]
            del self._jobs[job_id]

    async def get_job(self, job_id: str) -> JsonDocument:
        job = self._job(job_id)
        if job.details is None:
            job.details = orjson.dumps(self._details(job))
        return JsonDocument(job.details, _loads)

    def _details(self, job: _Job) -> dict[str, Any]:
        manifest = job.manifest
        agent_status = job.status.value if job.status is not JobStatus.QUEUED else "pending"
        details = {
            **self._job_summary(job),
            "placement_policy": manifest.policies.get("placement", "local"),
            "recovery_policy": manifest.policies.get("recovery", "restart"),
            "root_agent_ids": list(manifest.entrypoints),
            "result": job.result,
            "daemon": manifest.daemon,
            "payloads": job.payload_keys,
            "manifest_ref": {
                "graph_id": manifest.graph_id,
                "manifest_version": manifest.manifest_version,
                "manifest_path": None,
                "job_path": None,
            },
            "topology": {
                "nodes": job.raw_manifest.get("nodes", []),
                "edges": job.raw_manifest.get("edges", []),
                "entrypoints": list(manifest.entrypoints),
            },
        }
        return {
            "job": details,
            "summary": {
                "status": job.status.value,
                "agent_count": len(job.agents),
                "event_count": job.end,
                "message_count": job.messages,
                "dead_letter_count": job.dead_letters,
                "mailbox_depth": len(job.inflight),
            },
            "agents": [
                {
                    "agent_id": a.node_id,
                    "agent_type": a.agent_type,
                    "type": a.type,
                    "assigned_node": NODE_NAME,
                    "status": agent_status,
                    "processed_messages": a.processed,
                    "mailbox_depth": a.mailbox,
                    "metadata": {
                        "paused": job.status is JobStatus.PAUSED,
                        "outbound_edges": a.outbound,
                    },
                }
                for a in job.agents.values()
            ],
            "recent_events": [orjson.Fragment(e) for e in job.events[-RECENT_EVENTS:]],
            "sandboxes": [],
        }

    @staticmethod
    def _job_summary(job: _Job) -> dict[str, Any]:
        return {
            "job_id": job.job_id,
            "graph_id": job.manifest.graph_id,
            "job_name": job.manifest.job_name,
            "status": job.status.value,
            "submitted_at": job.submitted_at,
            "updated_at": job.updated_at,
        }

    async def list_jobs(self, limit: int, include_terminal: bool) -> JsonDocument:
        if limit < 0:
            raise InvalidArgumentError("limit must not be negative")
        limit = limit or 100
        data = []
        for job in reversed(self._jobs.values()):
            if not include_terminal and job.status.is_terminal:
                continue
            data.append(self._job_summary(job))
            if len(data) >= limit:
                break
        return JsonDocument(orjson.dumps({"data": data}), _loads)

    async def cancel_job(self, job_id: str) -> JobAck:
        job = self._job(job_id)
        check_transition(JobAction.CANCEL, job.status)
        self._finish(job, JobStatus.CANCELLED, ev.JOB_CANCELLED, {"previous_status": job.status})
        return JobAck(job_id, job.status.value)

    async def pause_job(self, job_id: str) -> JobAck:
        job = self._job(job_id)
        check_transition(JobAction.PAUSE, job.status)
        job.paused_from = job.status
        self._set_status(job, JobStatus.PAUSED)
        self._emit(job, ev.JOB_PAUSED, None, {"previous_status": job.paused_from.value})
        return JobAck(job_id, job.status.value)

    async def resume_job(self, job_id: str) -> JobAck:
        job = self._job(job_id)
        check_transition(JobAction.RESUME, job.status)
        self._set_status(job, job.paused_from or JobStatus.RUNNING)
        job.paused_from = None
        self._emit(job, ev.JOB_RESUMED, None, {"status": job.status.value})
        return JobAck(job_id, job.status.value)

    async def clear_jobs(self) -> int:
        gone = list(self._finished)
        for job_id in gone:
            del self._jobs[job_id]
        self._finished.clear()
        return len(gone)

    async def replay_dead_letter(self, job_id: str, event_index: int) -> ReplayAck:
        job = self._job(job_id)
        position = event_index - job.base
        event = orjson.loads(job.events[position]) if 0 <= position < len(job.events) else None
        if event is None or event.get("type") != ev.DEAD_LETTER:
            raise InvalidArgumentError(
                f"event {event_index} of job {job_id!r} is not a dead letter"
            )
        if event_index in job.replayed:
            raise AlreadyExistsError(f"dead letter at event {event_index} was already replayed")
        check_transition(JobAction.REPLAY, job.status)
        payload = event["payload"]
        envelope = payload["message"]["envelope"]
        agent_id = payload["agent_id"]
        job.replayed.add(event_index)
        if job.status is JobStatus.COMPLETED:
            job.result = None
            self._set_status(job, JobStatus.RUNNING)
        self._enqueue(
            job,
            envelope.get("from"),
            agent_id,
            envelope.get("type") or "replay",
            payload["message"].get("body"),
            0,
            self._clock(),
            replay=True,
        )
        self._emit(job, ev.DEAD_LETTER_REPLAYED, agent_id, {"event_index": event_index})
        self._kick()
        return ReplayAck(job_id, job.status.value, agent_id)

    async def system_summary(self) -> JsonDocument:
        by_status = {s: 0 for s in JobStatus}
        for job in self._jobs.values():
            by_status[job.status] += 1
        running = by_status[JobStatus.RUNNING]
        in_use = min(running, POOL_CAPACITY)
        waiting = by_status[JobStatus.PENDING] + by_status[JobStatus.QUEUED]
        summary = {
            "nodes": [
                {
                    "name": NODE_NAME,
                    "self?": True,
                    "connected_nodes": [],
                    "scheduler_hint": "local",
                    "executor_pools": {
                        "default": {
                            "capacity": POOL_CAPACITY,
                            "available": POOL_CAPACITY - in_use,
                            "in_use": in_use,
                            "queued": waiting + running - in_use,
                            "active": running,
                        }
                    },
                }
            ],
            "jobs": [self._job_summary(job) for job in reversed(self._jobs.values())],
        }
        return JsonDocument(orjson.dumps(summary), _loads)

    async def stream_events(
        self,
        job_id: str,
        *,
        follow: bool,
        after: int = -1,
        heartbeat_seconds: float | None = None,
    ) -> AsyncIterator[EventRecord | Heartbeat]:
        job = self._job(job_id)
        position = after + 1
        while True:
            position = max(position, job.base)
            while position < job.end:
                yield EventRecord(position, JsonDocument(job.events[position - job.base], _loads))
                position += 1
                position = max(position, job.base)
            if not follow or job.status.is_terminal:
                return
            if job.changed is None:
                job.changed = asyncio.Event()
            try:
                async with asyncio.timeout(heartbeat_seconds):
                    await job.changed.wait()
            except TimeoutError:
                yield Heartbeat()

    async def ping(self, deadline_seconds: float) -> None:
        return None


def _simulate(config: Mapping[str, Any]) -> Mapping[str, Any]:
    simulate = config.get("simulate")
    return simulate if isinstance(simulate, Mapping) else {}
