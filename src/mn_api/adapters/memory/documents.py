"""The documents the in-memory runtime answers with, shaped as each release writes them:
job details and summaries, agents, the cluster summary."""

from __future__ import annotations

from typing import Any

import orjson

from mn_api.adapters.memory.model import (
    BUNDLE_ROOT,
    GENERATION_A_ARCHITECTURE,
    GENERATION_A_NODE,
    HEARTBEAT_SECONDS,
    JOB_ROOT,
    SimulatedNode,
    _Agent,
    _Job,
    _placement,
    _recovery,
    _sandbox_name,
)
from mn_api.domain import events as ev
from mn_api.domain.events import iso_timestamp
from mn_api.domain.manifest import Manifest
from mn_api.domain.status import (
    JobStatus,
)


class Documents:
    """The document-building half of InMemoryRuntime (its state is the runtime's own)."""

    def _heartbeat_at(self, job: _Job, stopped_at: float | None = None) -> float:
        """The last heartbeat tick of the job's agents: every HEARTBEAT_SECONDS while the
        job's coordinator runs it; none once it lost it or the job ended. An agent whose
        heartbeat stopped at `stopped_at` has none after that."""
        if job.lost_at is not None:
            until = job.lost_at
        elif job.live:
            until = self._clock()
        else:
            return 0.0
        if stopped_at is not None:
            until = min(until, stopped_at)
        ticks = max(until - job.started_at, 0.0) // HEARTBEAT_SECONDS
        return job.started_at + ticks * HEARTBEAT_SECONDS

    def _lapsed(self, agent: _Agent) -> bool:
        """An executor running a host command sends no heartbeat until it ends: once
        `heartbeat_lapse_seconds` passed without one, the core reads it as not live."""
        run = agent.run
        return run is not None and self._clock() - run.started_at >= self._heartbeat_lapse

    def _job_live(self, job: _Job) -> bool:
        """A live job is not live to the core once none of its agents is (all of them run
        host commands whose heartbeats lapsed) and its record has not changed meanwhile."""
        if not job.live:
            return False
        if not all(self._lapsed(a) for a in job.agents.values()):
            return True
        return job.updated_at > iso_timestamp(self._clock() - self._heartbeat_lapse)

    def _details_key(self, job: _Job) -> tuple[float, int]:
        """What the job's details depend on beyond its own changes: the heartbeat tick, and
        how many of its agents' heartbeats lapsed."""
        return self._heartbeat_at(job), sum(1 for a in job.agents.values() if self._lapsed(a))

    def _agent_status(self, job: _Job, agent: _Agent) -> str:
        if not agent.executor:
            return "busy" if agent.mailbox else "ready"
        if agent.run is not None:
            return "running"
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
        run = agent.run
        beat = self._heartbeat_at(job, run.started_at if run is not None else None)
        last_seen = max(agent.last_seen, iso_timestamp(beat)) if beat else agent.last_seen
        if self.release.generation_a_documents:
            # Agents keep `paused?` false and `live?` true, even once the job has ended; the
            # agents of a job whose coordinator is gone read as not live, and so does an
            # executor whose heartbeat lapsed while it runs a command.
            return {
                "agent_id": agent.node_id,
                "agent_type": agent.agent_type,
                "assigned_node": agent.node,
                "last_error": agent.error,
                "last_heartbeat_at": last_seen,
                "lease": agent.lease or {"lease_id": None, "pool": None, "slots": None},
                "live?": not job.coordinator_lost and not self._lapsed(agent),
                "mailbox_depth": agent.mailbox,
                "paused?": False,
                "processed_messages": agent.processed,
                "running?": run is not None,
                "sandbox_name": agent.sandbox_name,
                "status": status,
            }
        document: dict[str, Any] = {
            "agent_id": agent.node_id,
            "agent_type": agent.agent_type,
            "assigned_node": agent.node,
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
    def _lone_node_name(self) -> str:
        """The name of a core that runs alone: generation A cores are not distributed."""
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
            if job.error is not None:
                info["error"] = job.error
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
            # Generation A cores list agents by node, then id; older ones in the manifest's
            # order.
            "agents": [
                self._agent(job, agent)
                for agent in (
                    sorted(job.agents.values(), key=lambda a: (a.node, a.node_id))
                    if gen_a
                    else job.agents.values()
                )
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
            "live?": self._job_live(job),
            "submitted_at": job.submitted_at,
            "updated_at": job.updated_at,
            "placement_policy": self._placement(job.manifest),
            "recovery_policy": _recovery(job.manifest),
            "executor_count": len(executors),
            # Generation A counts the executors running a host command.
            "active_executors": sum(1 for a in executors if a.run is not None)
            if self.release.agents_complete_jobs
            else (len(executors) if running else 0),
            "nodes": self._job_nodes(job),
            "sandbox_names": [a.sandbox_name for a in executors if a.sandbox_name]
            if self.release.generation_a_documents
            else [_sandbox_name(job, a) for a in executors if a.agent_type == "sandbox_worker"],
            "last_event": job.last_event,
        }

    def _hardware(self, node: SimulatedNode) -> dict[str, Any]:
        return {
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
            "gpu": self._gpu(node),
        }

    def _gpu(self, node: SimulatedNode) -> Any:
        if self.release.generation_a_documents:
            return "Not available" if not node.gpus else f"{node.gpus} GPU(s)"
        return {"count": node.gpus, "devices": []}

    def _heartbeat(self, job_id: str) -> bytes:
        beat: dict[str, Any] = {
            "type": ev.STREAM_HEARTBEAT,
            "job_id": job_id,
            "timestamp": self._now(),
        }
        if self.release.version_field:
            beat["version"] = 1
        return orjson.dumps(beat)
