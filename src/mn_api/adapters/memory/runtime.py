"""InMemoryRuntime: runs jobs the way a released core does, one message hop per step, in memory.

The port (what the gateway calls) is here; the engine that moves jobs is in `engine.py`,
the documents it answers with in `documents.py`, the event streams in `streams.py`, the
cluster of nodes and its faults in `cluster.py`, and its model in `model.py`."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import orjson

from mn_api.adapters.core_refusals import refusal_error
from mn_api.adapters.memory.cluster import Cluster
from mn_api.adapters.memory.documents import Documents
from mn_api.adapters.memory.engine import Engine
from mn_api.adapters.memory.model import (
    EXECUTOR_TYPES,
    FORCED_CANCELLATION,
    FORCED_CANCELLATION_RESULT,
    HEARTBEAT_LAPSE_SECONDS,
    LARGE_MANIFEST_CHARS,
    SWEEP_GUARD_SECONDS,
    PersistFailedError,
    SimulatedNode,
    _Agent,
    _Job,
    _judge,
    _loads,
    _milliseconds,
    _simulate,
)
from mn_api.adapters.memory.records import Records
from mn_api.adapters.memory.releases import LATEST, CoreRelease, core_release
from mn_api.adapters.memory.services import CoreRefusal, LaterServices
from mn_api.adapters.memory.streams import Streams
from mn_api.application.ports import JobAck, ReplayAck, RuntimePort
from mn_api.domain import events as ev
from mn_api.domain.documents import JsonDocument
from mn_api.domain.errors import (
    AlreadyExistsError,
    CoordinatorGoneError,
    InvalidArgumentError,
    InvalidTransitionError,
    JobNotFoundError,
    NodeNotFoundError,
    NotSupportedError,
    RequirementsNotMetError,
)
from mn_api.domain.events import iso_timestamp
from mn_api.domain.manifest import Manifest
from mn_api.domain.status import (
    NOT_PAUSED,
    NOT_RUNNING,
    JobAction,
    JobStatus,
    check_transition,
)


class InMemoryRuntime(Cluster, Engine, Documents, Streams, Records, RuntimePort):
    """A released core's behaviour without the core: validation, scheduling, messaging, faults.

    `release` picks the profile (CORE.md: 1.1, 1.2.5 or 1.2.31, the newest by default): job
    ids, documents, event shapes, the answers of pause/resume/cancel and their refusals.
    Everything happens in `step()`, which advances every unpaused job by one hop; a
    background task calls it every `step_seconds` once `start()` ran. Tests construct it
    with `auto_run=False` and call `step()` themselves, with a clock of their own.

    Three simulations beyond node faults, set per job in `metadata.simulate`:
    `coordinator_lost` (the job's coordinator goes away once it runs: its record stays
    live, nothing moves, and cancel force-writes it), `duplicate_boundary` (a following
    stream sends the last event of the history twice, as a core may at that boundary) and
    `scheduling_ms` (the scheduler finds room for the job only that long after it was
    submitted: it stays pending until then).

    `nodes` > 1 simulates a cluster of that many nodes (`mn1@127.0.0.1`, ...; releases
    1.2.5, 1.2.31 and d26bef71), each with the hardware of `node` and an executor pool of
    its own: jobs' coordinators and agents are spread over the live members, and a test can
    kill and restart nodes and take the state store away (`kill_node`, `restart_node`,
    `state_store_down`, `state_store_up`; see `Cluster`). One node answers exactly as a
    lone core does. A new leader sweeps only the orphaned jobs whose record is older than
    `sweep_guard_seconds` (as a real core does: SWEEP_GUARD_SECONDS by default). A
    generation A executor running a host command for `config.simulate.run_ms` sends no
    heartbeat: after `heartbeat_lapse_seconds` its documents say it is not live until the
    command ends.
    """

    def __init__(
        self,
        *,
        release: str | CoreRelease = LATEST,
        node: SimulatedNode | None = None,
        step_seconds: float = 0.05,
        clock: Callable[[], float] = time.time,
        auto_run: bool = True,
        max_jobs: int = 10_000,
        max_events_per_job: int = 200_000,
        max_inflight_per_job: int = 100_000,
        duplicate_boundary: bool = False,
        nodes: int = 1,
        heartbeat_lapse_seconds: float = HEARTBEAT_LAPSE_SECONDS,
        sweep_guard_seconds: float = SWEEP_GUARD_SECONDS,
    ) -> None:
        self.release = release if isinstance(release, CoreRelease) else core_release(release)
        self.node = node or SimulatedNode()
        self._step_seconds = step_seconds
        self._clock = clock
        self._auto_run = auto_run
        self._max_jobs = max_jobs
        self._max_events = max_events_per_job
        self._max_inflight = max_inflight_per_job
        self._duplicate_boundary = duplicate_boundary
        self._heartbeat_lapse = heartbeat_lapse_seconds
        self._sweep_guard = sweep_guard_seconds
        self._form_cluster(nodes, self._lone_node_name)
        self._jobs: dict[str, _Job] = {}
        self._active: dict[str, _Job] = {}
        # Finished jobs in the order they finished: the first to go when the cap is reached.
        self._finished: dict[str, None] = {}
        self._seq = itertools.count()
        self._started_at = clock()
        self._driver: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        # Releases that back jobs up or run definitions again keep each job's payloads.
        self._keeps_bundles = bool(self.release.later_services & {"backups", "jobs_v2"})
        # The later services (schedules, deployments, operations...) the release offers.
        self.services = LaterServices(self)

    async def start(self) -> None:
        if self._auto_run and self._driver is None:
            self._wake = asyncio.Event()
            self._driver = asyncio.create_task(self._drive(), name="mn-memory-runtime")

    async def close(self) -> None:
        await self.services.close()
        if self._driver is not None:
            self._driver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._driver
            self._driver = None

    def _new_job_id(self, graph_id: str, now: float) -> str:
        if self.release.short_job_ids:
            parts = re.split(r"[^A-Za-z0-9]+", graph_id)
            initials = "".join(p[0] for p in parts if p).lower() or "j"
            return f"{initials}-{secrets.token_hex(4)}"
        return f"{graph_id}-{int(now * 1000)}-{secrets.token_hex(6)}"

    def _new_job(
        self, manifest: Manifest, payloads: Mapping[str, bytes], job_id: str | None = None
    ) -> _Job:
        now = self._clock()
        if job_id is None:
            job_id = self._new_job_id(manifest.graph_id, now)
            while job_id in self._jobs:
                job_id = self._new_job_id(manifest.graph_id, now)
        elif job_id in self._jobs:
            raise AlreadyExistsError(f"job {job_id} already exists")
        stamp = iso_timestamp(now)
        agents = {
            node.node_id: _Agent(
                node_id=node.node_id,
                agent_type=node.agent_type,
                executor=node.agent_type in EXECUTOR_TYPES,
                outbound=[e.to_node for e in manifest.edges if e.from_node == node.node_id],
                fail=bool(_simulate(node.config).get("fail", False)),
                drop_first=int(_simulate(node.config).get("drop_first", 0)),
                delay_seconds=int(_simulate(node.config).get("delay_ms", 0)) / 1000,
                last_seen=stamp,
                config=node.config,
                node=self._place_agent(),
            )
            for node in manifest.nodes
        }
        simulate = _simulate(manifest.metadata)
        job = _Job(
            job_id,
            next(self._seq),
            manifest,
            sorted(payloads),
            stamp,
            stamp,
            agents,
            lose_coordinator=bool(simulate.get("coordinator_lost", False)),
            duplicate_boundary=bool(simulate.get("duplicate_boundary", self._duplicate_boundary)),
            schedulable_at=self._clock() + _milliseconds(simulate.get("scheduling_ms")),
            started_at=now,
            payloads=dict(payloads) if self._keeps_bundles else {},
        )
        self._jobs[job_id] = job
        self._set_status(job, JobStatus.PENDING)
        return job

    def _job(self, job_id: str) -> _Job:
        """The job, as the state store holds it: while the store is down, no job is known."""
        job = self._jobs.get(job_id) if self._store_up else None
        if job is None:
            raise JobNotFoundError(job_id)
        return job

    def _controlled_job(self, job_id: str) -> _Job:
        """The job a control call reaches: through its coordinator, which runs it even while
        the state store is down (a job no coordinator runs is then unknown)."""
        if self._store_up:
            return self._job(job_id)
        job = self._jobs.get(job_id)
        if job is None or job.status.is_terminal or not job.coordinated:
            raise JobNotFoundError(job_id)
        return job

    async def submit_job(
        self, manifest_json: str, payloads: Mapping[str, bytes], *, job_id: str | None = None
    ) -> JobAck:
        """`job_id`: the id to run the job under (the later services' runs), else a new one
        as the release makes them."""
        if len(manifest_json) > LARGE_MANIFEST_CHARS:
            # Judged on a thread, so that the loop keeps serving while a huge one is read.
            manifest = await asyncio.to_thread(_judge, manifest_json)
        else:
            manifest = _judge(manifest_json)
        if self.release.checks_requirements:
            self._check_requirements(manifest)
        if not self._store_up:
            raise PersistFailedError()
        job = self._new_job(manifest, payloads, job_id)
        self._emit(
            job,
            ev.JOB_PENDING,
            **self._job_details(graph_id=manifest.graph_id, payload_count=len(payloads)),
        )
        self._evict()
        return JobAck(job.job_id, job.status.value)

    def _check_requirements(self, manifest: Manifest) -> None:
        available = {
            "cpu": self.node.logical_processors,
            "memory": self.node.memory_mb,
            "gpu": self.node.gpus,
        }
        unmet = [
            f"{name}={amount:g} available={available[name]}"
            for name, amount in manifest.requirements.items()
            if amount > available[name]
        ]
        if unmet:
            raise RequirementsNotMetError(f"requirements_not_met: {', '.join(unmet)}")

    def _evict(self) -> None:
        while len(self._jobs) > self._max_jobs and self._finished:
            job_id = next(iter(self._finished))
            del self._finished[job_id]
            del self._jobs[job_id]

    async def get_job(self, job_id: str) -> JsonDocument:
        job = self._job(job_id)
        key = self._details_key(job)
        if job.details is None or job.details_key != key:
            job.details = orjson.dumps(self._details(job))
            job.details_key = key
        return JsonDocument(job.details, _loads)

    def _newest(self, limit: int, include_terminal: bool) -> list[_Job]:
        if not self._store_up:
            return []
        jobs = (
            job for job in self._jobs.values() if include_terminal or not job.status.is_terminal
        )
        return heapq.nlargest(limit, jobs, key=lambda j: (j.updated_at, j.seq))

    async def list_jobs(self, limit: int, include_terminal: bool) -> JsonDocument:
        limit = limit if limit > 0 else 100
        data = [self._job_summary(job) for job in self._newest(limit, include_terminal)]
        return JsonDocument(orjson.dumps({"data": data}), _loads)

    async def cancel_job(self, job_id: str) -> JobAck:
        job = self._controlled_job(job_id)
        release = self.release
        if job.status.is_terminal:
            if release.cancel_of_terminal_succeeds:
                return JobAck(job_id, "cancelled")
            check_transition(JobAction.CANCEL, job.status)
        previous = job.status.value
        if not job.coordinated:
            job.coordinator_lost = job.orphaned = False
            # Generation A cores say why in the event that ends the job.
            forced = {"reason": FORCED_CANCELLATION} if release.generation_a_documents else {}
            self._finish(
                job, JobStatus.CANCELLED, ev.JOB_CANCELLED, previous_status=previous, **forced
            )
            if release.generation_a_documents:
                job.result = dict(FORCED_CANCELLATION_RESULT)
            return JobAck(job_id, "force cancelled" if release.force_cancel else "cancelled")
        if job.status is JobStatus.CANCELLING:
            return JobAck(job_id, "cancellation_pending")
        if release.cancellation_pending and job.status is JobStatus.RUNNING and job.inflight:
            self._set_status(job, JobStatus.CANCELLING)
            job.updated_at = self._now()
            return JobAck(job_id, "cancellation_pending")
        self._finish(job, JobStatus.CANCELLED, ev.JOB_CANCELLED, previous_status=previous)
        return JobAck(job_id, "cancelled")

    async def remove_node(self, node_name: str) -> str:
        """Removing a live member is acknowledged; the simulated node stays (`kill_node`
        is how a test takes one away), marked disconnected where node administration is."""
        if not self.release.clear_jobs:  # generation A lacks RemoveNode as it lacks ClearJobs
            raise NotSupportedError("RemoveNode is not supported by this core")
        if node_name not in self._members:
            raise NodeNotFoundError(node_name)
        nodes = self.services.group("nodes")
        if nodes is not None:  # 1.2.5 and newer: taken out by an operator, until AddNode
            nodes.disconnect(node_name)
        return "removed"

    async def cancel_all_jobs(self) -> JsonDocument:
        """Cancel every live job (1.2.31's CancelAllJobs, run as a cancel_all_jobs
        operation): the operation's id, the counts and each job's outcome."""
        if not self.release.cancel_all:
            raise NotSupportedError("CancelAllJobs is not supported by this core")
        result = await self.services.group("operations").cancel_all()
        return JsonDocument(orjson.dumps(result), _loads)

    def _coordinated(self, job: _Job) -> None:
        """Pause/Resume reach a job through its coordinator: a job whose coordinator's node
        died is refused so on every release; generation A cores refuse finished jobs and
        those orphaned by a restart the same way rather than judging their status."""
        if job.orphaned or (
            self.release.gone_coordinator_refusal
            and (job.status.is_terminal or job.coordinator_lost)
        ):
            raise CoordinatorGoneError(job.job_id, job.status.value)

    async def pause_job(self, job_id: str) -> JobAck:
        job = self._controlled_job(job_id)
        self._coordinated(job)
        if job.coordinator_lost:
            raise InvalidTransitionError(NOT_RUNNING)
        check_transition(JobAction.PAUSE, job.status)
        self._set_status(job, JobStatus.PAUSED)
        self._emit(job, ev.JOB_PAUSED, **self._job_details(previous_status="running"))
        return JobAck(job_id, "paused")

    async def resume_job(self, job_id: str) -> JobAck:
        job = self._controlled_job(job_id)
        self._coordinated(job)
        if job.status is JobStatus.RUNNING and self.release.resume_of_running_succeeds:
            return JobAck(job_id, "resumed")
        if job.status is not JobStatus.PAUSED:
            raise InvalidTransitionError(NOT_PAUSED)
        self._set_status(job, JobStatus.RUNNING)
        self._emit(job, ev.JOB_RESUMED, **self._job_details(status="running"))
        return JobAck(job_id, "resumed")

    def reset(self) -> None:
        """Forget every job, live or not, as a core started again on an empty store; the
        nodes and the store are left as they are."""
        self._jobs.clear()
        self._active.clear()
        self._finished.clear()
        self.services.reset()

    async def clear_jobs(self) -> int:
        """Remove every finished job (a clear_jobs operation where the release has them)."""
        if not self.release.clear_jobs:
            raise NotSupportedError("ClearJobs is not supported by this core")
        if not self._store_up:
            return 0
        operations = self.services.group("operations")
        if operations is not None:
            return await operations.clear_all()  # type: ignore[no-any-return]
        gone = list(self._finished)
        for job_id in gone:
            del self._jobs[job_id]
        self._finished.clear()
        return len(gone)

    def clear_job(self, job_id: str) -> None:
        """Remove one finished job (an item of a clear_jobs operation); JobNotFoundError,
        or InvalidTransitionError (`job_is_not_terminal`) for a live one."""
        job = self._job(job_id)
        if not job.status.is_terminal:
            raise InvalidTransitionError("job_is_not_terminal")
        del self._jobs[job_id]
        self._finished.pop(job_id, None)

    async def replay_dead_letter(self, job_id: str, event_index: int) -> ReplayAck:
        if not self.release.replay:
            raise NotSupportedError("ReplayDeadLetter is not supported by this core")
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
        message = event["message"]
        envelope = message["envelope"]
        agent_id = event["agent_id"]
        job.replayed.add(event_index)
        if job.status is JobStatus.COMPLETED:
            job.result = None
            self._set_status(job, JobStatus.RUNNING)
        self._enqueue(
            job,
            envelope.get("from"),
            agent_id,
            envelope.get("type") or "replay",
            message.get("body"),
            0,
            self._clock(),
            replay=True,
        )
        self._emit(
            job, ev.DEAD_LETTER_REPLAYED, agent_id=agent_id, payload={"event_index": event_index}
        )
        self._kick()
        return ReplayAck(job_id, job.status.value, agent_id)

    async def system_summary(self) -> JsonDocument:
        return self.system_summary_as(None)

    def system_summary_as(self, viewer: str | None = None) -> JsonDocument:
        """The summary as the live node `viewer` answers it (`self?` true for it alone);
        None: the first live node. A core without its state store answers `{}`."""
        if not self._store_up:
            return JsonDocument(b"{}", _loads)
        if viewer is None:
            viewer = self._by_name()[0]
        elif viewer not in self._members:
            raise ValueError(f"{viewer} is not a live member of the cluster")
        by_status = {s.value: 0 for s in JobStatus}
        for job in self._jobs.values():
            by_status[job.status.value] += 1
        summary: dict[str, Any] = {
            "nodes": self._member_documents(viewer),
            "jobs": [self._job_summary(job) for job in self._newest(len(self._jobs), True)],
        }
        if self.release.summary_metrics:
            summary["metrics"] = {
                "jobs": {"total": len(self._jobs), "by_status": by_status},
                "nodes": {"total": len(self._members)},
                "runtime": {
                    "uptime_seconds": round(self._clock() - self._started_at, 3),
                    "active_jobs": len(self._active),
                    "messages_processed": sum(j.messages for j in self._jobs.values()),
                    "dead_letters": sum(j.dead_letters for j in self._jobs.values()),
                },
            }
        return JsonDocument(orjson.dumps(summary), _loads)

    async def ping(self, deadline_seconds: float) -> None:
        return None

    async def call_service(
        self, method: str, request: Mapping[str, Any], *, kind: str = "record"
    ) -> dict[str, Any]:
        try:
            return await self.services.call(method, request)
        except CoreRefusal as refused:
            raise refusal_error(refused.code, refused.message, kind=kind) from None

    async def stream_service(  # type: ignore[override]
        self, method: str, request: Mapping[str, Any], *, kind: str = "record"
    ) -> AsyncIterator[dict[str, Any]]:
        try:
            stream = self.services.stream(method, request)
            async with contextlib.aclosing(stream):
                async for answer in stream:
                    yield answer
        except CoreRefusal as refused:
            raise refusal_error(refused.code, refused.message, kind=kind) from None

    def payload_keys(self, job_id: str) -> list[str]:
        """The payload files the job was submitted with (a core writes them to its disk)."""
        return list(self._job(job_id).payload_keys)
