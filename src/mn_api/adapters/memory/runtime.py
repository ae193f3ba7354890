"""InMemoryRuntime: runs jobs the way a released core does, one message hop per step, in memory."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import re
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from mn_api.adapters.memory import agents as generation_a
from mn_api.adapters.memory.releases import LATEST, CoreRelease, core_release
from mn_api.application.ports import JobAck, ReplayAck, RuntimePort
from mn_api.domain import events as ev
from mn_api.domain.documents import JsonDocument
from mn_api.domain.errors import (
    AlreadyExistsError,
    CoordinatorGoneError,
    InvalidArgumentError,
    InvalidTransitionError,
    JobNotFoundError,
    ManifestInvalidError,
    NodeNotFoundError,
    NotSupportedError,
    RequirementsNotMetError,
)
from mn_api.domain.events import EventRecord, Heartbeat, iso_timestamp
from mn_api.domain.manifest import Manifest, check_manifest, parse_manifest
from mn_api.domain.status import (
    NOT_PAUSED,
    NOT_RUNNING,
    JobAction,
    JobStatus,
    check_transition,
)

MAX_HOPS = 64
START_MESSAGE = {"type": "start"}
EXECUTOR_TYPES = frozenset({"executor", "sandbox_worker"})
# What a message summary and a dead letter say of how a message is encoded.
CONTENT_TYPE = "application/json"
CONTENT_ENCODING = "identity"
MESSAGE_CLASS = "event"
# 1.2.31 gives up on a message after this many failed durable deliveries.
DURABLE_ATTEMPTS = 10
JOB_ROOT = "/var/lib/mirrorneuron/jobs"
# Where a generation A core writes each submission's manifest and payloads.
BUNDLE_ROOT = "/tmp"
# Live agents record a heartbeat this often; an orphaned job's agents stop.
HEARTBEAT_SECONDS = 2.0
# How a generation A core names its node and architecture when it runs alone.
GENERATION_A_NODE = "nonode@nohost"
GENERATION_A_ARCHITECTURE = "x86_64-pc-linux-gnu"
# Manifests longer than this are judged off the event loop.
LARGE_MANIFEST_CHARS = 256 * 1024


def _loads(raw: bytes) -> Any:
    return orjson.loads(raw)


@dataclass(frozen=True, slots=True)
class SimulatedNode:
    """The one cluster node the simulation runs on, as GetSystemSummary describes it.

    Fixed numbers rather than the host's, so answers are the same on every machine; a
    manifest whose `requirements` exceed them is refused by releases that check them.
    """

    name: str = "mn1@127.0.0.1"
    logical_processors: int = 8
    architecture: str = "x86_64"
    memory_mb: int = 16_384
    gpus: int = 0
    pool_capacity: int = 4


@dataclass(slots=True)
class _Delivery:
    source: str | None
    target: str
    type: str
    message: Any
    hops: int
    ready_at: float
    message_id: str
    replay: bool = False
    message_class: str = MESSAGE_CLASS


@dataclass(slots=True)
class _Agent:
    node_id: str
    agent_type: str
    executor: bool
    outbound: list[str]
    fail: bool
    drop_first: int
    delay_seconds: float
    last_seen: str
    config: Mapping[str, Any] = field(default_factory=dict)
    processed: int = 0
    mailbox: int = 0
    dropped: int = 0
    error: str | None = None
    # Generation A: what an aggregator or sensor received, an executor's lease and sandbox.
    received: list[Any] = field(default_factory=list)
    lease: dict[str, Any] | None = None
    sandbox_name: str | None = None

    @property
    def count(self) -> int:
        return len(self.received)


@dataclass(slots=True)
class _Job:
    job_id: str
    seq: int
    manifest: Manifest
    payload_keys: list[str]
    submitted_at: str
    updated_at: str
    agents: dict[str, _Agent]
    coordinator_lost: bool = False
    lose_coordinator: bool = False
    duplicate_boundary: bool = False
    # When the scheduler finds room for the job: it stays pending until then.
    schedulable_at: float = 0.0
    status: JobStatus = JobStatus.PENDING
    stage: int = 0
    events: list[bytes] = field(default_factory=list)
    base: int = 0
    last_event: str = ""
    inflight: deque[_Delivery] = field(default_factory=deque)
    messages: int = 0
    dead_letters: int = 0
    replayed: set[int] = field(default_factory=set)
    result: dict[str, Any] | None = None
    sandbox_runs: list[dict[str, Any]] = field(default_factory=list)
    # When the job's coordinator was lost: its agents' heartbeats stop there.
    lost_at: float | None = None
    started_at: float = 0.0
    changed: asyncio.Event | None = None
    # The serialized details, kept until the job next changes: readers far outnumber steps.
    details: bytes | None = None
    details_beat: float = 0.0

    @property
    def end(self) -> int:
        return self.base + len(self.events)

    @property
    def live(self) -> bool:
        return not self.status.is_terminal and not self.coordinator_lost


class InMemoryRuntime(RuntimePort):
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
        self._jobs: dict[str, _Job] = {}
        self._active: dict[str, _Job] = {}
        # Finished jobs in the order they finished: the first to go when the cap is reached.
        self._finished: dict[str, None] = {}
        self._seq = itertools.count()
        self._started_at = clock()
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

    def _emit(
        self,
        job: _Job,
        kind: str,
        *,
        agent_id: str | None = None,
        payload: Mapping[str, Any] | None = None,
        **details: Any,
    ) -> None:
        """Append one flat event: job-level events carry their details at the top level and
        no `agent_id` key; agents' events carry `agent_id` and `payload`."""
        stamp = self._now()
        job.updated_at = stamp
        job.details = None
        event: dict[str, Any] = {"type": kind, "timestamp": stamp, "job_id": job.job_id}
        if agent_id is not None:
            event["agent_id"] = agent_id
        event.update(details)
        if payload is not None:
            event["payload"] = payload
        if self.release.version_field:
            event["version"] = 1
        job.events.append(orjson.dumps(event))
        job.last_event = f"{kind}({agent_id})" if agent_id else kind
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
        if status.is_terminal or status is JobStatus.PAUSED or job.coordinator_lost:
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
        if job.status is JobStatus.CANCELLING:
            self._finish(job, JobStatus.CANCELLED, ev.JOB_CANCELLED, previous_status="running")
            return True
        if job.stage == 0:
            job.stage = 1
            self._emit(job, ev.JOB_VALIDATED, **self._job_details(graph_id=job.manifest.graph_id))
            return True
        if job.stage == 1:
            if now < job.schedulable_at:
                return False
            job.stage = 2
            self._emit(job, ev.JOB_SCHEDULED, node=self._node_name)
            return True
        if job.stage == 2:
            job.stage = 3
            self._set_status(job, JobStatus.RUNNING)
            self._emit(
                job,
                ev.JOB_RUNNING,
                **self._job_details(root_agent_ids=list(job.manifest.entrypoints)),
            )
            self._start_entrypoints(job, now)
            if job.lose_coordinator:
                self.lose_coordinator(job.job_id)
            return True
        return self._deliver_ready(job, now)

    def _start_entrypoints(self, job: _Job, now: float) -> None:
        """Each entrypoint gets its initial inputs; generation A cores send them from the
        `runtime` as `init` commands, and an entrypoint without inputs gets `{}`."""
        gen_a = self.release.agents_complete_jobs
        for entry in job.manifest.entrypoints:
            inputs = job.manifest.initial_inputs.get(entry) or [{} if gen_a else START_MESSAGE]
            for message in inputs:
                if gen_a:
                    self._enqueue(
                        job,
                        generation_a.RUNTIME_SENDER,
                        entry,
                        generation_a.START_TYPE,
                        message,
                        0,
                        now,
                        message_class=generation_a.COMMAND_CLASS,
                    )
                else:
                    self._enqueue(job, None, entry, "initial_input", message, 0, now)

    def _job_details(self, **details: Any) -> dict[str, Any]:
        """What a job-level event says beyond its type: nothing on generation A cores."""
        return {} if self.release.generation_a_documents else details

    def lose_coordinator(self, job_id: str) -> None:
        """Simulate the loss of the job's coordinator: its record stays live, nothing moves."""
        job = self._job(job_id)
        if job.status.is_terminal:
            return
        job.coordinator_lost = True
        job.lost_at = self._clock()
        job.details = None
        self._active.pop(job.job_id, None)

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
        message_class: str = MESSAGE_CLASS,
    ) -> None:
        agent = job.agents[target]
        delivery = _Delivery(
            source,
            target,
            kind,
            message,
            hops,
            now + agent.delay_seconds,
            secrets.token_hex(8),
            replay,
            message_class,
        )
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
            self._deliver(job, delivery)
        idle = job.status is JobStatus.RUNNING and not job.inflight
        if idle and not job.manifest.daemon and not self.release.agents_complete_jobs:
            self._finish(job, JobStatus.COMPLETED, ev.JOB_COMPLETED, result=self._result(job))
            progressed = True
        return progressed

    def _summary_of(self, delivery: _Delivery) -> dict[str, Any]:
        """What a core says of a delivered message: who, what and how, but not its body."""
        summary: dict[str, Any] = {"message_id": delivery.message_id}
        if delivery.source is not None:
            summary["from"] = delivery.source
        summary.update(
            {
                "to": delivery.target,
                "type": delivery.type,
                "class": delivery.message_class,
                "content_type": CONTENT_TYPE,
                "content_encoding": CONTENT_ENCODING,
                "stream": None,
            }
        )
        return summary

    def _deliver(self, job: _Job, delivery: _Delivery) -> None:
        agent = job.agents[delivery.target]
        agent.mailbox -= 1
        if delivery.hops > MAX_HOPS:
            self._dead_letter(job, delivery, "message_expired")
            return
        if not delivery.replay and agent.dropped < agent.drop_first:
            agent.dropped += 1
            self._dead_letter(job, delivery, "delivery_attempts_exhausted")
            return
        agent.last_seen = self._now()
        job.messages += 1
        self._emit(
            job,
            ev.AGENT_MESSAGE_RECEIVED,
            agent_id=agent.node_id,
            payload=self._summary_of(delivery),
        )
        if self.release.agents_complete_jobs and not agent.fail:
            generation_a.act(self, job, agent, delivery)
            return
        agent.processed += 1
        if agent.fail:
            agent.error = "simulated_failure"
            self._finish(
                job, JobStatus.FAILED, ev.JOB_FAILED, agent_id=agent.node_id, reason=agent.error
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
                    self._clock(),
                )

    def _dead_letter(self, job: _Job, delivery: _Delivery, reason: str) -> None:
        """A message no agent took: the whole message at the top level, and on 1.2.31 a
        payload saying why (older releases give no reason)."""
        job.dead_letters += 1
        envelope: dict[str, Any] = {"message_id": delivery.message_id, "job_id": job.job_id}
        if delivery.source is not None:
            envelope["from"] = delivery.source
        envelope.update({"to": delivery.target, "type": delivery.type, "class": MESSAGE_CLASS})
        message = {
            "envelope": envelope,
            "headers": {"content_type": CONTENT_TYPE, "content_encoding": CONTENT_ENCODING},
            "body": delivery.message,
            "artifacts": [],
            "stream": None,
        }
        payload = None
        if self.release.dead_letter_payload:
            attempts = 1 if reason == "message_expired" else DURABLE_ATTEMPTS
            payload = {"reason": reason, "message_id": delivery.message_id, "attempt": attempts}
        self._emit(job, ev.DEAD_LETTER, agent_id=delivery.target, payload=payload, message=message)

    def _finish(self, job: _Job, status: JobStatus, kind: str, **details: Any) -> None:
        for delivery in job.inflight:
            job.agents[delivery.target].mailbox -= 1
        job.inflight.clear()
        self._set_status(job, status)
        if status is JobStatus.COMPLETED:
            job.result = details.get("result")
        if self.release.generation_a_documents:
            # A generation A core keeps the end's reason as the job's result.
            if status is JobStatus.COMPLETED:
                job.result = {"agent_id": details.get("agent_id"), "output": details.get("result")}
            elif status is JobStatus.FAILED:
                job.result = {"agent_id": details.get("agent_id"), "error": details.get("reason")}
            else:
                job.result = dict(generation_a.CANCELLED_RESULT)
            details.pop("previous_status", None)
        self._emit(job, kind, **details)

    def _complete(self, job: _Job, agent: _Agent, output: Any) -> None:
        """An agent completes the job with its output (generation A)."""
        self._finish(
            job, JobStatus.COMPLETED, ev.JOB_COMPLETED, agent_id=agent.node_id, result=output
        )

    def _fail(self, job: _Job, agent: _Agent, reason: str) -> None:
        self._finish(job, JobStatus.FAILED, ev.JOB_FAILED, agent_id=agent.node_id, reason=reason)

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
            job = self._new_job(parsed, {})
            self._emit(job, ev.JOB_PENDING, graph_id="seeded", payload_count=0)
            self._emit(job, ev.JOB_VALIDATED, graph_id="seeded")
            self._emit(job, ev.JOB_SCHEDULED, node=self._node_name)
            self._set_status(job, JobStatus.RUNNING)
            self._emit(job, ev.JOB_RUNNING, root_agent_ids=["source"])
            sink = job.agents["sink"]
            for _n in range(max(events_per_job - 5, 0)):
                sink.processed += 1
                job.messages += 1
                delivery = _Delivery("source", "sink", "reading", None, 1, 0, secrets.token_hex(8))
                self._emit(
                    job,
                    ev.AGENT_MESSAGE_RECEIVED,
                    agent_id="sink",
                    payload=self._summary_of(delivery),
                )
            job.stage = 3
            self._finish(job, JobStatus.COMPLETED, ev.JOB_COMPLETED, result=self._result(job))
            ids.append(job.job_id)
        self._evict()
        return ids

    def _new_job_id(self, graph_id: str, now: float) -> str:
        if self.release.short_job_ids:
            parts = re.split(r"[^A-Za-z0-9]+", graph_id)
            initials = "".join(p[0] for p in parts if p).lower() or "j"
            return f"{initials}-{secrets.token_hex(4)}"
        return f"{graph_id}-{int(now * 1000)}-{secrets.token_hex(6)}"

    def _new_job(self, manifest: Manifest, payloads: Mapping[str, bytes]) -> _Job:
        now = self._clock()
        job_id = self._new_job_id(manifest.graph_id, now)
        while job_id in self._jobs:
            job_id = self._new_job_id(manifest.graph_id, now)
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
        )
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
        if len(manifest_json) > LARGE_MANIFEST_CHARS:
            # Judged on a thread, so that the loop keeps serving while a huge one is read.
            manifest = await asyncio.to_thread(_judge, manifest_json)
        else:
            manifest = _judge(manifest_json)
        if self.release.checks_requirements:
            self._check_requirements(manifest)
        job = self._new_job(manifest, payloads)
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
        beat = self._heartbeat_at(job)
        if job.details is None or job.details_beat != beat:
            job.details = orjson.dumps(self._details(job))
            job.details_beat = beat
        return JsonDocument(job.details, _loads)

    def _heartbeat_at(self, job: _Job) -> float:
        """The last heartbeat tick of the job's agents: every HEARTBEAT_SECONDS while the
        job's coordinator runs it; none once it lost it or the job ended."""
        if job.lost_at is not None:
            until = job.lost_at
        elif job.live:
            until = self._clock()
        else:
            return 0.0
        ticks = max(until - job.started_at, 0.0) // HEARTBEAT_SECONDS
        return job.started_at + ticks * HEARTBEAT_SECONDS

    def _agent_status(self, job: _Job, agent: _Agent) -> str:
        if not agent.executor:
            return "busy" if agent.mailbox else "ready"
        if self.release.agents_complete_jobs and agent.error is None:
            # An executor that ran is completed; one still waiting for a message is ready.
            return "completed" if agent.sandbox_name else "ready"
        if agent.error is not None:
            return "error"
        if job.status is JobStatus.PAUSED:
            return "paused"
        if job.status is JobStatus.PENDING:
            return "queued"
        if job.status.is_terminal:
            return "completed"
        return "running"

    def _agent(self, job: _Job, agent: _Agent) -> dict[str, Any]:
        status = self._agent_status(job, agent)
        beat = self._heartbeat_at(job)
        last_seen = max(agent.last_seen, iso_timestamp(beat)) if beat else agent.last_seen
        if self.release.generation_a_documents:
            # Agents keep `paused?` false and `live?` true, even once the job has ended; the
            # agents of a job whose coordinator is gone read as not live.
            return {
                "agent_id": agent.node_id,
                "agent_type": agent.agent_type,
                "assigned_node": self._node_name,
                "last_error": agent.error,
                "last_heartbeat_at": last_seen,
                "lease": agent.lease or {"lease_id": None, "pool": None, "slots": None},
                "live?": not job.coordinator_lost,
                "mailbox_depth": agent.mailbox,
                "paused?": False,
                "processed_messages": agent.processed,
                "running?": False,
                "sandbox_name": agent.sandbox_name,
                "status": status,
            }
        document: dict[str, Any] = {
            "agent_id": agent.node_id,
            "agent_type": agent.agent_type,
            "assigned_node": self._node_name,
            "processed_messages": agent.processed,
            "mailbox_depth": agent.mailbox,
            "paused?": job.status is JobStatus.PAUSED,
            "last_heartbeat_at": last_seen,
            "live?": job.live,
            "status": status,
            "running?": job.live and job.status is JobStatus.RUNNING,
            "last_error": agent.error,
            "lease": None,
        }
        if agent.agent_type == "sandbox_worker":
            document["sandbox_name"] = _sandbox_name(job, agent)
        return document

    @property
    def _node_name(self) -> str:
        return GENERATION_A_NODE if self.release.generation_a_documents else self.node.name

    def _placement(self, manifest: Manifest) -> str:
        return "local" if self.release.generation_a_documents else _placement(manifest)

    def _details(self, job: _Job) -> dict[str, Any]:
        manifest = job.manifest
        gen_a = self.release.generation_a_documents
        info: dict[str, Any] = {
            "job_id": job.job_id,
            "graph_id": manifest.graph_id,
            "job_name": manifest.job_name,
        }
        if not gen_a:
            info["daemon"] = manifest.daemon
        info.update(
            {
                "status": job.status.value,
                "submitted_at": job.submitted_at,
                "updated_at": job.updated_at,
                "root_agent_ids": list(manifest.entrypoints),
                "placement_policy": self._placement(manifest),
                "recovery_policy": _recovery(manifest),
            }
        )
        if gen_a:
            info["result"] = job.result  # null until the job ends, as the core writes it
        elif self.release.result_in_details and job.result is not None:
            info["result"] = job.result
        job_path = f"{BUNDLE_ROOT}/bundle_{job.seq}" if gen_a else f"{JOB_ROOT}/{job.job_id}"
        info["manifest_ref"] = {
            "graph_id": manifest.graph_id,
            "manifest_version": manifest.manifest_version,
            "manifest_path": f"{job_path}/manifest.json",
            "job_path": job_path,
        }
        recent = job.events[-self.release.recent_events :] if self.release.recent_events else []
        return {
            "job": info,
            "summary": self._job_summary(job),
            # Generation A cores list agents by id; older ones in the manifest's order.
            "agents": [
                self._agent(job, job.agents[agent_id])
                for agent_id in (sorted(job.agents) if gen_a else job.agents)
            ],
            "recent_events": [orjson.Fragment(e) for e in reversed(recent)],
            "sandboxes": list(job.sandbox_runs)
            if gen_a
            else [
                {"name": _sandbox_name(job, a), "agent_id": a.node_id, "status": "ready"}
                for a in job.agents.values()
                if a.agent_type == "sandbox_worker"
            ],
        }

    def _job_summary(self, job: _Job) -> dict[str, Any]:
        executors = [a for a in job.agents.values() if a.executor]
        running = job.live and job.status is JobStatus.RUNNING
        return {
            "job_id": job.job_id,
            "graph_id": job.manifest.graph_id,
            "job_name": job.manifest.job_name,
            "status": job.status.value,
            "live?": job.live,
            "submitted_at": job.submitted_at,
            "updated_at": job.updated_at,
            "placement_policy": self._placement(job.manifest),
            "recovery_policy": _recovery(job.manifest),
            "executor_count": len(executors),
            "active_executors": 0
            if self.release.agents_complete_jobs or not running
            else len(executors),
            "nodes": [self._node_name],
            "sandbox_names": [a.sandbox_name for a in executors if a.sandbox_name]
            if self.release.generation_a_documents
            else [_sandbox_name(job, a) for a in executors if a.agent_type == "sandbox_worker"],
            "last_event": job.last_event,
        }

    def _newest(self, limit: int, include_terminal: bool) -> list[_Job]:
        jobs = (
            job for job in self._jobs.values() if include_terminal or not job.status.is_terminal
        )
        return heapq.nlargest(limit, jobs, key=lambda j: (j.updated_at, j.seq))

    async def list_jobs(self, limit: int, include_terminal: bool) -> JsonDocument:
        limit = limit if limit > 0 else 100
        data = [self._job_summary(job) for job in self._newest(limit, include_terminal)]
        return JsonDocument(orjson.dumps({"data": data}), _loads)

    async def cancel_job(self, job_id: str) -> JobAck:
        job = self._job(job_id)
        release = self.release
        if job.status.is_terminal:
            if release.cancel_of_terminal_succeeds:
                return JobAck(job_id, "cancelled")
            check_transition(JobAction.CANCEL, job.status)
        previous = job.status.value
        if job.coordinator_lost:
            job.coordinator_lost = False
            self._finish(job, JobStatus.CANCELLED, ev.JOB_CANCELLED, previous_status=previous)
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
        """The simulated cluster is one node, which stays: removing it is acknowledged."""
        if not self.release.clear_jobs:  # generation A lacks RemoveNode as it lacks ClearJobs
            raise NotSupportedError("RemoveNode is not supported by this core")
        if node_name != self._node_name:
            raise NodeNotFoundError(node_name)
        return "removed"

    async def cancel_all_jobs(self) -> JsonDocument:
        """Cancel every live job (1.2.31's CancelAllJobs): how many, and their ids."""
        if not self.release.cancel_all:
            raise NotSupportedError("CancelAllJobs is not supported by this core")
        live = [job_id for job_id, job in self._jobs.items() if not job.status.is_terminal]
        for job_id in live:
            await self.cancel_job(job_id)
        return JsonDocument(orjson.dumps({"cancelled_count": len(live), "job_ids": live}), _loads)

    def _coordinated(self, job: _Job) -> None:
        """Generation A cores reach a job through its coordinator: none runs a finished or
        orphaned job, and Pause/Resume say so rather than judging its status."""
        if self.release.gone_coordinator_refusal and (
            job.status.is_terminal or job.coordinator_lost
        ):
            raise CoordinatorGoneError(job.job_id, job.status.value)

    async def pause_job(self, job_id: str) -> JobAck:
        job = self._job(job_id)
        self._coordinated(job)
        if job.coordinator_lost:
            raise InvalidTransitionError(NOT_RUNNING)
        check_transition(JobAction.PAUSE, job.status)
        self._set_status(job, JobStatus.PAUSED)
        self._emit(job, ev.JOB_PAUSED, **self._job_details(previous_status="running"))
        return JobAck(job_id, "paused")

    async def resume_job(self, job_id: str) -> JobAck:
        job = self._job(job_id)
        self._coordinated(job)
        if job.status is JobStatus.RUNNING and self.release.resume_of_running_succeeds:
            return JobAck(job_id, "resumed")
        if job.status is not JobStatus.PAUSED:
            raise InvalidTransitionError(NOT_PAUSED)
        self._set_status(job, JobStatus.RUNNING)
        self._emit(job, ev.JOB_RESUMED, **self._job_details(status="running"))
        return JobAck(job_id, "resumed")

    async def clear_jobs(self) -> int:
        if not self.release.clear_jobs:
            raise NotSupportedError("ClearJobs is not supported by this core")
        gone = list(self._finished)
        for job_id in gone:
            del self._jobs[job_id]
        self._finished.clear()
        return len(gone)

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
        node = self.node
        by_status = {s.value: 0 for s in JobStatus}
        active = waiting = 0
        for job in self._jobs.values():
            by_status[job.status.value] += 1
            executors = sum(1 for a in job.agents.values() if a.executor)
            if job.live and job.status is JobStatus.RUNNING:
                active += executors
            elif job.status is JobStatus.PENDING:
                waiting += executors
        in_use = min(active, node.pool_capacity)
        summary: dict[str, Any] = {
            "nodes": [
                {
                    "name": self._node_name,
                    "connected_nodes": [self._node_name],
                    "self?": True,
                    "scheduler_hint": "cluster_member",
                    "executor_pools": {
                        "default": {
                            "capacity": node.pool_capacity,
                            "in_use": in_use,
                            "available": node.pool_capacity - in_use,
                            "queued": waiting + active - in_use,
                            "active": in_use,
                        }
                    },
                    "hardware": {
                        "cpu": {
                            "logical_processors": node.logical_processors,
                            "architecture": GENERATION_A_ARCHITECTURE
                            if self.release.generation_a_documents
                            else node.architecture,
                        },
                        "memory": {
                            "total_bytes": node.memory_mb * 1_048_576,
                            "total_mb": node.memory_mb,
                        },
                        "gpu": self._gpu(),
                    },
                }
            ],
            "jobs": [self._job_summary(job) for job in self._newest(len(self._jobs), True)],
        }
        if self.release.summary_metrics:
            summary["metrics"] = {
                "jobs": {"total": len(self._jobs), "by_status": by_status},
                "nodes": {"total": 1},
                "runtime": {
                    "uptime_seconds": round(self._clock() - self._started_at, 3),
                    "active_jobs": len(self._active),
                    "messages_processed": sum(j.messages for j in self._jobs.values()),
                    "dead_letters": sum(j.dead_letters for j in self._jobs.values()),
                },
            }
        return JsonDocument(orjson.dumps(summary), _loads)

    def _gpu(self) -> Any:
        if self.release.generation_a_documents:
            return "Not available" if not self.node.gpus else f"{self.node.gpus} GPU(s)"
        return {"count": self.node.gpus, "devices": []}

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
            if not await self._changed(job, heartbeat_seconds):
                yield Heartbeat()

    async def _changed(self, job: _Job, within: float | None) -> bool:
        """Wait for the job's next event; False when `within` seconds passed quietly."""
        if job.changed is None:
            job.changed = asyncio.Event()
        try:
            async with asyncio.timeout(within):
                await job.changed.wait()
        except TimeoutError:
            return False
        return True

    async def core_stream(
        self, job_id: str, *, follow: bool, heartbeat_ms: int = 0, limit: int = 0
    ) -> AsyncIterator[bytes]:
        """The event stream exactly as this release's core sends it over the wire.

        Releases that do not follow send the history and end, for an unknown job too (an
        empty stream). Following releases send the history (its last `limit` events where
        the release has the field), end at once when it holds the job's end, and otherwise
        pass live events on until the end, with a `stream_heartbeat` after each quiet
        interval; an unknown job gets heartbeats forever.
        """
        release = self.release
        if not release.follows_streams:
            follow, heartbeat_ms = False, 0
        if not release.stream_tail_limit:
            limit = 0
        interval = heartbeat_ms / 1000 if heartbeat_ms > 0 else None
        job = self._jobs.get(job_id)
        if job is None:
            if not follow:
                return
            while True:
                if interval is None:
                    await asyncio.Event().wait()  # silent until the caller goes
                await asyncio.sleep(interval or 0)
                yield self._heartbeat(job_id)
        position = max(job.base, job.end - limit) if limit > 0 else job.base
        ended = job.status.is_terminal
        history_end = job.end
        while position < history_end:
            yield job.events[position - job.base]
            position = max(position + 1, job.base)
        if not follow or ended:
            return
        if job.duplicate_boundary and position > job.base:
            yield job.events[position - 1 - job.base]
        while True:
            while position < job.end:
                raw = job.events[position - job.base]
                yield raw
                position = max(position + 1, job.base)
                if _type_of(raw) in ev.TERMINAL_EVENT_STATUS:
                    return
            if job.status.is_terminal and job_id not in self._active:
                return
            if not await self._changed(job, interval):
                yield self._heartbeat(job_id)

    def _heartbeat(self, job_id: str) -> bytes:
        beat: dict[str, Any] = {
            "type": ev.STREAM_HEARTBEAT,
            "job_id": job_id,
            "timestamp": self._now(),
        }
        if self.release.version_field:
            beat["version"] = 1
        return orjson.dumps(beat)

    async def ping(self, deadline_seconds: float) -> None:
        return None

    def payload_keys(self, job_id: str) -> list[str]:
        """The payload files the job was submitted with (a core writes them to its disk)."""
        return list(self._job(job_id).payload_keys)


def _type_of(raw: bytes) -> str:
    kind = orjson.loads(raw).get("type")
    return kind if isinstance(kind, str) else ""


def _judge(manifest_json: str) -> Manifest:
    """The manifest the text holds, or the core's refusal of it."""
    try:
        raw = orjson.loads(manifest_json)
    except orjson.JSONDecodeError as err:
        raise ManifestInvalidError([_parser_message(manifest_json, err)]) from err
    problems = check_manifest(raw)
    if problems:
        raise ManifestInvalidError(problems.listed, problems.total)
    return parse_manifest(raw)


def _milliseconds(value: Any) -> float:
    """A simulated delay in seconds, from milliseconds (anything else: none)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return 0.0
    return value / 1000


def _simulate(config: Mapping[str, Any]) -> Mapping[str, Any]:
    simulate = config.get("simulate")
    return simulate if isinstance(simulate, Mapping) else {}


def _placement(manifest: Manifest) -> str:
    placement = manifest.policies.get("placement_policy", manifest.policies.get("placement"))
    return placement if isinstance(placement, str) else "spread"


def _recovery(manifest: Manifest) -> str:
    mode = manifest.policies.get("recovery_mode")
    return mode if isinstance(mode, str) else "local_restart"


def _sandbox_name(job: _Job, agent: _Agent) -> str:
    return f"{job.job_id}-{agent.node_id}"


def _parser_message(text: str, err: orjson.JSONDecodeError) -> str:
    """The JSON parser's own words for text that is not JSON, as cores pass them on."""
    position = err.pos
    if position >= len(text):
        return f"unexpected end of input at position {position}"
    char = text[position]
    return f'unexpected byte at position {position}: 0x{ord(char) & 0xFF:02X} ("{char}")'
