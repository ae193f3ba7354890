"""The core's cluster as the gateway has seen it: its members, the nodes it lost, which node
coordinates a job, and when a job is orphaned.

A core's summary lists only the members it has now: a node that dies simply disappears. The
gateway remembers every node it has seen, so that one that left is still shown (as lost,
with when it was last seen and what it could run), and a node that comes back is a member
again. Jobs are judged by their coordinating node (the `node` of their `job_scheduled`
event, or of their newest `job_recovery_started`): a job whose coordinator left the cluster
is orphaned, whatever its agents' heartbeats say.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mn_api.domain.events import iso_timestamp
from mn_api.domain.status import LIVE_STATUSES

# The events that name the node coordinating a job.
JOB_SCHEDULED = "job_scheduled"
JOB_RECOVERY_STARTED = "job_recovery_started"
COORDINATOR_EVENTS = (JOB_SCHEDULED, JOB_RECOVERY_STARTED)


@dataclass(slots=True)
class NodeSighting:
    """One node the gateway has seen in a summary, and what it was then."""

    name: str
    first_seen_at: float
    last_seen_at: float
    lost_at: float | None = None
    # The node as the summary last described it (pools, hardware), for the listing.
    document: dict[str, Any] = field(default_factory=dict)

    @property
    def executors(self) -> int:
        """The executor slots the node offered when last seen."""
        return executor_capacity(self.document)

    def lost_view(self) -> dict[str, Any]:
        """The node as a listing shows it once it has left: as last seen, marked lost."""
        view = {key: value for key, value in self.document.items() if key not in ("self?", "self")}
        view["name"] = self.name
        view["status"] = "lost"
        view["last_seen_at"] = iso_timestamp(self.last_seen_at)
        if self.lost_at is not None:
            view["lost_at"] = iso_timestamp(self.lost_at)
        return view


class Membership:
    """Every node seen in the core's summaries: the members now, and those that left."""

    __slots__ = ("_nodes", "_retiring", "observed_at")

    def __init__(self) -> None:
        self._nodes: dict[str, NodeSighting] = {}
        self._retiring: set[str] = set()
        self.observed_at: float | None = None

    def retire(self, name: str) -> None:
        """The node is being taken out on purpose: once it leaves it is forgotten, not
        lost."""
        self._retiring.add(name)

    def observe(self, nodes: Iterable[Mapping[str, Any]], at: float) -> tuple[list[str], list[str]]:
        """Take in the nodes a summary listed at `at`; answers the names that left and the
        names that came back. A summary that lists no node says nothing of membership (a
        core whose state store is down answers so) and changes nothing."""
        listed: dict[str, Mapping[str, Any]] = {}
        for node in nodes:
            name = node.get("name") if isinstance(node, Mapping) else None
            if isinstance(name, str) and name:
                listed[name] = node
        if not listed:
            return [], []
        left, returned = [], []
        for name, node in listed.items():
            known = self._nodes.get(name)
            if known is None:
                self._nodes[name] = NodeSighting(name, at, at, document=dict(node))
                continue
            if known.lost_at is not None:
                returned.append(name)
                known.lost_at = None
            known.last_seen_at = at
            known.document = dict(node)
        for name, known in list(self._nodes.items()):
            if name in listed or known.lost_at is not None:
                continue
            if name in self._retiring:
                self._retiring.discard(name)
                del self._nodes[name]
                continue
            known.lost_at = at
            left.append(name)
        self.observed_at = at
        return left, returned

    def is_lost(self, name: str) -> bool:
        known = self._nodes.get(name)
        return known is not None and known.lost_at is not None

    def sighting(self, name: str) -> NodeSighting | None:
        return self._nodes.get(name)

    def lost(self) -> list[NodeSighting]:
        """The nodes that left and have not come back, in the order they were first seen."""
        return [node for node in self._nodes.values() if node.lost_at is not None]

    def members(self) -> list[str]:
        return [node.name for node in self._nodes.values() if node.lost_at is None]


def with_lost_nodes(summary: Mapping[str, Any], membership: Membership) -> Mapping[str, Any]:
    """The summary's nodes followed by those that left the cluster (`status: "lost"`, with
    when they were last seen): a summary lists only the members it has now."""
    lost = membership.lost()
    nodes = summary.get("nodes")
    if not lost or not isinstance(nodes, list):
        return summary
    listed = {n.get("name") for n in nodes if isinstance(n, Mapping)}
    view = dict(summary)
    view["nodes"] = [*nodes, *(n.lost_view() for n in lost if n.name not in listed)]
    return view


def executor_capacity(node: Mapping[str, Any]) -> int:
    """The executor slots a summary's node offers, over all its pools."""
    pools = node.get("executor_pools")
    total = 0
    for pool in pools.values() if isinstance(pools, Mapping) else ():
        capacity = pool.get("capacity") if isinstance(pool, Mapping) else None
        if isinstance(capacity, int) and not isinstance(capacity, bool) and capacity > 0:
            total += capacity
    return total


def coordinator_in(event: Mapping[str, Any]) -> str | None:
    """The coordinating node an event names: that of a `job_scheduled` or a
    `job_recovery_started`; "" for a recovery that names none (generation A cores: the job
    is coordinated anew, where is not said); None for any other event."""
    if event.get("type") not in COORDINATOR_EVENTS:
        return None
    node = event.get("node")
    if isinstance(node, str) and node:
        return node
    return "" if event.get("type") == JOB_RECOVERY_STARTED else None


def coordinator_of(events: Iterable[Any]) -> str | None:
    """The coordinating node named by the newest of these events that names one, the
    events given newest first (as a job's `recent_events` are)."""
    for event in events:
        if isinstance(event, Mapping):
            node = coordinator_in(event)
            if node is not None:
                return node
    return None


# The agents that run commands (and send no heartbeat while one runs).
EXECUTOR_TYPES = frozenset({"executor", "sandbox_worker"})


def busy_executor(agent: Mapping[str, Any]) -> bool:
    """An executor running a command: it says it is running (a generation A core, whose
    lease reads all null until the command ends), or holds an executor lease while it is
    not done. Such an agent sends no heartbeat until its command ends, and is alive."""
    if agent.get("agent_type") not in EXECUTOR_TYPES:
        return False
    status = agent.get("status")
    if status in ("running", "executing"):
        return True
    lease = agent.get("lease")
    holds = isinstance(lease, Mapping) and lease.get("lease_id") is not None
    return holds and status not in ("completed", "error", "failed", "ready")


def orphan_report(
    details: Mapping[str, Any],
    *,
    coordinator: str | None,
    membership: Membership,
    refused_at: float | None = None,
) -> dict[str, Any] | None:
    """What the gateway says of a live job that no coordinator runs any more, or None.

    `coordinator` is "" when the job was recovered and the core did not say where.
    A job is orphaned when its coordinating node left the cluster, or when the core refused
    a control call because no coordinator runs it. Without either, a job whose summary says
    it is not live and none of whose agents is busy running a command (its agents stopped
    sending heartbeats) is reported too, saying only what was seen.
    """
    job = details.get("job")
    status = job.get("status") if isinstance(job, Mapping) else None
    if status not in LIVE_STATUSES:
        return None
    closing = (
        "Pause and resume are refused; cancelling ends it (the core answers `force "
        "cancelled`). Its status stays as recorded until the core's leader fails or "
        "recovers it."
    )
    if coordinator and membership.is_lost(coordinator):
        sighting = membership.sighting(coordinator)
        assert sighting is not None and sighting.lost_at is not None
        left = iso_timestamp(sighting.lost_at)
        return {
            "reason": "coordinator_lost",
            "coordinator_node": coordinator,
            "since": left,
            "detail": (
                f"node {coordinator}, which coordinated it, left the cluster at {left} "
                f"(last seen at {iso_timestamp(sighting.last_seen_at)}). {closing}"
            ),
        }
    if refused_at is not None:
        when = iso_timestamp(refused_at)
        return {
            "reason": "no_coordinator",
            "since": when,
            "detail": (
                f"the core said at {when} that no coordinator runs this job in the "
                f"connected cluster. {closing}"
            ),
        }
    summary = details.get("summary")
    if not isinstance(summary, Mapping) or summary.get("live?") is not False:
        return None
    agents = [a for a in details.get("agents") or () if isinstance(a, Mapping)]
    if any(busy_executor(agent) for agent in agents):
        return None  # an executor running a command sends no heartbeat, yet is alive
    beats = [a["last_heartbeat_at"] for a in agents if isinstance(a.get("last_heartbeat_at"), str)]
    report: dict[str, Any] = {"reason": "no_heartbeat"}
    if beats:
        report["last_heartbeat_at"] = max(beats)
        seen = f"none of its agents has sent a heartbeat since {max(beats)}"
    else:
        seen = "none of its agents sends a heartbeat"
    report["detail"] = (
        f"the core reports this job not live: {seen} and none is running a command, so no "
        f"coordinator runs it any more. {closing}"
    )
    return report
