"""A job's workflow progress: what its history says about each agent, folded one event at
a time, and the snapshot the newest clients draw (the job, its steps and their agents).

Every agent of the manifest is a step; its layer is its distance from an entrypoint. An
agent's status follows from the job's and from what the history shows it doing:
- the job has ended: `done` for an agent that took part (`failed` for the one the job
  failed in), `idle` for one that never did (`cancelled` jobs leave theirs `cancelled`);
- the job is live: `ready` for an entrypoint still waiting for its first message, `idle`
  for another agent that has none yet; once it took one, `running` while the history shows
  it still at work on the newest message it took, `done` once it shows that work finished;
  `paused` while the job is.

What says an agent's work on a message is finished, as the real core (d26bef71) reports it
(see WORK_DONE): an executor's command has run (`sandbox_job_completed`; older cores also
say `sandbox_job_failed`), or its kept output went on again (`executor_output_replayed`);
an aggregator has recorded the message (`aggregator_received`, or
`aggregator_duplicate_ignored` for a second result of the same `agent_id`); a sensor has
counted it (`sensor_observed`). A router, like an agent of any other type, has no event of
its own: it hands a message on as it takes it (what it sent may wait unseen in the next
agent's mailbox while that one is busy), so taking the message is its whole work. On a core
that never reports an aggregator's or a sensor's work, taking the message is theirs too;
executors always wait for their command.
Nothing is guessed: there is no per-agent percentage unless the agent has finished.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from mn_api.domain.cluster import COORDINATOR_EVENTS, coordinator_in
from mn_api.domain.events import (
    AGENT_MESSAGE_RECEIVED,
    AGGREGATOR_DUPLICATE_IGNORED,
    AGGREGATOR_RECEIVED,
    DEAD_LETTER,
    EXECUTOR_OUTPUT_REPLAYED,
    JOB_FAILED,
    JOB_PENDING,
    JOB_RUNNING,
    SANDBOX_JOB_COMPLETED,
    SANDBOX_JOB_FAILED,
    SENSOR_OBSERVED,
    TERMINAL_EVENT_STATUS,
    status_after,
)
from mn_api.domain.graph import CORE_SENDERS, topology_of
from mn_api.domain.manifest import AGENT_TYPE_ALIASES

RECENT_EVENTS = 20
# The buckets the clients count agents in.
BUCKETS = ("done", "running", "idle", "ready", "failed")
# The events that say an agent has finished with the message it took, and the agent type
# whose work they report (measured on the real core, d26bef71).
WORK_DONE = {
    SANDBOX_JOB_COMPLETED: "executor",
    SANDBOX_JOB_FAILED: "executor",
    EXECUTOR_OUTPUT_REPLAYED: "executor",
    AGGREGATOR_RECEIVED: "aggregator",
    AGGREGATOR_DUPLICATE_IGNORED: "aggregator",
    SENSOR_OBSERVED: "sensor",
}
# How far along a job is, by its status: a job never goes back to an earlier stage.
_STAGE = {
    "pending": 0,
    "queued": 0,
    "running": 1,
    "paused": 1,
    "cancelling": 2,
    **dict.fromkeys(TERMINAL_EVENT_STATUS.values(), 3),
}


class AgentActivity:
    """One agent as its history shows it."""

    __slots__ = (
        "dead_letters",
        "finished",
        "first_at",
        "last_at",
        "last_event",
        "received",
        "sent",
        "taken",
    )

    def __init__(self) -> None:
        self.received = 0
        self.sent = 0
        # Where in the history (1-based) it took its newest message, and where an event last
        # said it had finished with one.
        self.taken = 0
        self.finished = 0
        self.dead_letters = 0
        self.first_at = ""
        self.last_at = ""
        self.last_event = ""

    def saw(self, kind: str, stamp: str) -> None:
        if not self.first_at:
            self.first_at = stamp
        if stamp:
            self.last_at = stamp
        self.last_event = kind


class ProgressFold:
    """What a history says about a job's progress, extended with each new event."""

    __slots__ = (
        "agents",
        "coordinator",
        "ended_at",
        "events",
        "failed_agent",
        "failure",
        "graph_id",
        "recent",
        "reporting",
        "started_at",
        "status",
        "submitted_at",
        "updated_at",
    )

    def __init__(self) -> None:
        self.events = 0
        self.status: str | None = None
        self.graph_id = ""
        self.submitted_at = ""
        self.started_at = ""
        self.ended_at = ""
        self.updated_at = ""
        self.failure: Mapping[str, Any] | None = None
        self.failed_agent = ""
        # The node coordinating the job, as its scheduling or newest recovery named it.
        self.coordinator = ""
        self.agents: dict[str, AgentActivity] = {}
        # The agent types whose work this history reports in events of their own.
        self.reporting: set[str] = {"executor"}
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_EVENTS)

    def add(self, event: Mapping[str, Any]) -> None:
        self.events += 1
        kind = event.get("type")
        kind = kind if isinstance(kind, str) else ""
        stamp = event.get("timestamp")
        stamp = stamp if isinstance(stamp, str) else ""
        if stamp:
            self.updated_at = stamp
            self.submitted_at = self.submitted_at or stamp
        self.status = status_after(kind, self.status)
        if kind == JOB_PENDING and isinstance(event.get("graph_id"), str):
            self.graph_id = event["graph_id"]
        elif kind == JOB_RUNNING and not self.started_at:
            self.started_at = stamp
        elif kind in COORDINATOR_EVENTS:
            self.coordinator = coordinator_in(event) or ""
        elif kind in TERMINAL_EVENT_STATUS:
            self.ended_at = stamp
            if kind == JOB_FAILED:
                self.failure = event
        agent_id = event.get("agent_id")
        recent: dict[str, Any] = {"timestamp": stamp, "type": kind}
        if isinstance(agent_id, str) and agent_id:
            recent["agent_id"] = agent_id
            agent = self._agent(agent_id)
            agent.saw(kind, stamp)
            if kind == AGENT_MESSAGE_RECEIVED:
                agent.received += 1
                agent.taken = self.events
                payload = event.get("payload")
                sender = payload.get("from") if isinstance(payload, dict | Mapping) else None
                if isinstance(sender, str) and sender and sender not in CORE_SENDERS:
                    self._agent(sender).sent += 1
            elif kind == DEAD_LETTER:
                agent.dead_letters += 1
            elif kind in WORK_DONE:
                agent.finished = self.events
                self.reporting.add(WORK_DONE[kind])
            if kind == JOB_FAILED:
                self.failed_agent = agent_id
        self.recent.append(recent)

    def _agent(self, agent_id: str) -> AgentActivity:
        agent = self.agents.get(agent_id)
        if agent is None:
            agent = self.agents[agent_id] = AgentActivity()
        return agent


def snapshot(
    fold: ProgressFold,
    job_id: str,
    *,
    manifest: Mapping[str, Any] | None,
    status: str | None,
    generated_at: str,
    name: str | None = None,
    placements: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The workflow-progress document of a job: `status` is the job's as the runtime
    reports it (the history's, when not given); `manifest` its declared topology;
    `placements` the node each agent runs on, as the runtime last said."""
    topology = topology_of(manifest or {})
    status = status or fold.status or "pending"
    if status == "queued":  # scheduled, not yet running: a job's status says pending
        status = "pending"
    ended = status in TERMINAL_EVENT_STATUS.values()
    declared = {n["node_id"]: n for n in topology["nodes"] if n.get("node_id")}
    order = list(declared) + sorted(a for a in fold.agents if a not in declared)
    layers = _layers(order, topology)
    parents: dict[str, list[str]] = {a: [] for a in order}
    children: dict[str, list[str]] = {a: [] for a in order}
    edges = []
    for edge in topology["edges"]:
        source, target = edge.get("from_node"), edge.get("to_node")
        if source in parents and target in parents:
            children[source].append(target)
            parents[target].append(source)
            edges.append({"from": source, "to": target, "event": edge.get("message_type", "*")})
    entrypoints = set(topology["entrypoints"])
    agents = []
    steps = []
    counts = dict.fromkeys(BUCKETS, 0)
    for agent_id in order:
        activity = fold.agents.get(agent_id) or AgentActivity()
        node = declared.get(agent_id, {})
        role = node.get("agent_type") or "agent"
        agent_status = _agent_status(
            fold, agent_id, activity, status, ended, entrypoints, AGENT_TYPE_ALIASES.get(role, role)
        )
        bucket = agent_status if agent_status in counts else "idle"
        counts[bucket] += 1
        agent = {
            "id": agent_id,
            "display_name": agent_id,
            "role": role,
            "working_on": node.get("role") or role,
            "status": agent_status,
            "progress": 100 if agent_status == "done" else 0,
            "progress_source": "events",
            "items_done": activity.received,
            "messages_received": activity.received,
            "messages_sent": activity.sent,
            "dead_letters": activity.dead_letters,
            "live": agent_status == "running",
        }
        placed = (placements or {}).get(agent_id)
        if placed:
            agent["node"] = placed
        agent.update(_times(activity, ended))
        agents.append(agent)
        step = {
            "id": agent_id,
            "label": agent_id,
            "goal": role,
            "status": agent_status,
            "current": agent_status == "running",
            "parents": parents[agent_id],
            "children": children[agent_id],
            "layer": layers.get(agent_id, 0),
            "total_count": 1,
            "live": agent_status == "running",
            "agents": [agent],
        }
        if placed:
            step["node"] = placed
        step.update({f"{b}_count": int(bucket == b) for b in BUCKETS})
        step.update(_times(activity, ended))
        steps.append(step)
    running = [a["id"] for a in agents if a["status"] == "running"]
    document: dict[str, Any] = {
        "version": 1,
        "schema_version": 1,
        "job_id": job_id,
        "workflow_id": fold.graph_id or "workflow",
        "name": name or fold.graph_id or job_id,
        "status": status,
        "workflow_kind": "batch",
        "progress_source": "events",
        "sequence": fold.events,
        "generated_at": generated_at,
        "elapsed_seconds": _elapsed(fold.submitted_at, fold.ended_at or generated_at),
        "agent_count": {**counts, "total": len(agents)},
        "current_step_ids": running,
        "steps": steps,
        "agents": agents,
        "edges": edges,
        "layers": _grouped(layers, order),
        "messages": [],
        "recent_events": list(fold.recent),
    }
    if fold.submitted_at:
        document["submitted_at"] = fold.submitted_at
    if fold.coordinator:
        document["coordinator_node"] = fold.coordinator
    if running:
        document["current_step_id"] = running[0]
    if status == "failed":
        document["failure"] = _failure(fold)
    return document


def _agent_status(
    fold: ProgressFold,
    agent_id: str,
    activity: AgentActivity,
    status: str,
    ended: bool,
    entrypoints: set[str],
    kind: str,
) -> str:
    took_part = activity.received > 0 or activity.sent > 0
    if ended:
        if status == "failed" and agent_id == fold.failed_agent:
            return "failed"
        if status == "cancelled" and took_part:
            return "cancelled"
        return "done" if took_part else "idle"
    if status == "paused":
        return "paused"
    if activity.received == 0:
        return "ready" if agent_id in entrypoints or not entrypoints else "idle"
    return "running" if _at_work(fold, activity, kind) else "done"


def _at_work(fold: ProgressFold, activity: AgentActivity, kind: str) -> bool:
    """Whether the agent is still at work on the newest message it took: the history has
    not said since that it finished, and agents of its type have their work reported."""
    return activity.finished < activity.taken and kind in fold.reporting


def status_stage(status: str) -> int:
    """How far along its life a job with this status is: it never goes back to an earlier
    stage (`running` and `paused` are one stage)."""
    return _STAGE.get(status, 0)


def later_status(history: str | None, reported: str | None) -> str | None:
    """The job's status now, from its history and from the runtime's report: the
    history's, unless it is behind the report (a history read only partway says `pending`
    of a job that runs); the report may be older than the history, never further along."""
    if history is None or reported is None:
        return history or reported
    return reported if status_stage(reported) > status_stage(history) else history


def _times(activity: AgentActivity, ended: bool) -> dict[str, str]:
    times = {}
    if activity.first_at:
        times["started_at"] = activity.first_at
    if activity.last_at:
        times["last_event_at"] = activity.last_at
        if ended:
            times["ended_at"] = activity.last_at
    return times


def _layers(order: list[str], topology: Mapping[str, Any]) -> dict[str, int]:
    """Each agent's distance from an entrypoint along the declared edges (breadth first);
    agents no edge reaches are put after the deepest."""
    following: dict[str, list[str]] = {}
    for edge in topology["edges"]:
        following.setdefault(edge.get("from_node", ""), []).append(edge.get("to_node", ""))
    layers: dict[str, int] = {}
    frontier = [e for e in topology["entrypoints"] if e in order]
    depth = 0
    while frontier:
        nxt = []
        for agent_id in frontier:
            if agent_id in layers:
                continue
            layers[agent_id] = depth
            nxt.extend(following.get(agent_id, ()))
        frontier, depth = nxt, depth + 1
    last = max(layers.values(), default=-1) + 1
    for agent_id in order:
        layers.setdefault(agent_id, last)
    return layers


def _grouped(layers: dict[str, int], order: list[str]) -> list[list[str]]:
    grouped: dict[int, list[str]] = {}
    for agent_id in order:
        grouped.setdefault(layers[agent_id], []).append(agent_id)
    return [grouped[depth] for depth in sorted(grouped)]


def _elapsed(start: str, end: str) -> float:
    first, last = _moment(start), _moment(end)
    if first is None or last is None:
        return 0.0
    return round(max((last - first).total_seconds(), 0.0), 3)


def _moment(stamp: str) -> datetime | None:
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None


def _failure(fold: ProgressFold) -> dict[str, Any]:
    """The job's failure in the shape the clients show (`mn.error.v1`)."""
    event = fold.failure or {}
    result = event.get("result")
    reason = event.get("reason") or event.get("error")
    if reason is None and isinstance(result, dict | Mapping):
        reason = result.get("reason") or result.get("error")
    failure: dict[str, Any] = {
        "schema_version": "mn.error.v1",
        "code": "job.failed",
        "desc": reason if isinstance(reason, str) and reason else "the job failed",
        "severity": "ERROR",
        "details": {k: v for k, v in event.items() if k not in ("type", "timestamp", "version")},
    }
    if fold.ended_at:
        failure["occurred_at"] = fold.ended_at
    return failure
