"""The simulation engine: how jobs move, one message hop per step, and what each hop
records (events, dead letters, results)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping
from typing import Any

import orjson

from mn_api.adapters.memory import agents as generation_a
from mn_api.adapters.memory.model import (
    CONTENT_ENCODING,
    CONTENT_TYPE,
    DURABLE_ATTEMPTS,
    MAX_HOPS,
    MESSAGE_CLASS,
    START_MESSAGE,
    _Agent,
    _Delivery,
    _Job,
)
from mn_api.domain import events as ev
from mn_api.domain.events import iso_timestamp
from mn_api.domain.manifest import parse_manifest
from mn_api.domain.status import (
    JobStatus,
)


class Engine:
    """The stepping half of InMemoryRuntime (its state is the runtime's own)."""

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
        no `agent_id` key; agents' events carry `agent_id` and `payload`. While the state
        store is down an event cannot be written, and is lost."""
        if not self._store_up:
            return
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
        if status.is_terminal or status is JobStatus.PAUSED or not job.coordinated:
            self._active.pop(job.job_id, None)
        else:
            self._active[job.job_id] = job
            self._kick()

    def step(self) -> bool:
        """Advance every unpaused job by one step; answers whether anything happened.
        Nothing moves while the state store is down: no coordinator can record a step."""
        if not self._store_up:
            return False
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
            job.coordinator = self._place_coordinator()
            self._emit(job, ev.JOB_SCHEDULED, node=job.coordinator)
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
        ended = generation_a.end_runs(self, job, now)
        return self._deliver_ready(job, now) or ended

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
        message_id: str | None = None,
    ) -> None:
        agent = job.agents[target]
        delivery = _Delivery(
            source,
            target,
            kind,
            message,
            hops,
            now + agent.delay_seconds,
            message_id or secrets.token_hex(8),
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
            if delivery.ready_at > now or job.agents[delivery.target].run is not None:
                # Not due yet, or its executor is still running a command.
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
        for agent in job.agents.values():
            if agent.run is not None:  # the command is stopped with the job
                agent.run = None
                agent.lease = None
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
            job.coordinator = self._place_coordinator()
            self._emit(job, ev.JOB_SCHEDULED, node=job.coordinator)
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
