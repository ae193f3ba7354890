"""The simulated core cluster: its nodes, its leader and its state store, where jobs and
agents are placed, and the faults a test can inflict on it (a node killed or restarted, the
state store down or back), each with the consequences measured on a real cluster."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from mn_api.adapters.memory.model import (
    CLUSTER_HOST,
    LEADER_LEASE_SECONDS,
    ORPHAN_FAILURE,
    _Agent,
    _Job,
    _recovery,
)
from mn_api.domain import events as ev
from mn_api.domain.events import iso_timestamp
from mn_api.domain.status import JobStatus

# The recovery policy under which a new leader restarts an orphaned job (any other fails it).
CLUSTER_RECOVER = "cluster_recover"


# The job types the scheduler knows; a manifest names one in policies.job_type (or
# policies.scheduler.job_type), else it is a batch job.
JOB_TYPES = frozenset({"batch", "service", "system", "sysbatch"})


@dataclasses.dataclass(frozen=True, slots=True)
class NodeJob:
    """A job as node administration sees it from one node."""

    job_id: str
    status: str
    job_type: str
    recovery: str
    # Its agents placed on the node, and whether the node coordinates it.
    agents: list[str]
    coordinated: bool


def _job_type(job: _Job) -> str:
    policies = job.manifest.policies
    scheduler = policies.get("scheduler")
    named = policies.get("job_type")
    if named is None and isinstance(scheduler, dict):
        named = scheduler.get("job_type")
    kind = str(named).lower() if named is not None else "batch"
    return kind if kind in JOB_TYPES else "batch"


# What a new leader says of a job it recovers: that alone (not even the new coordinator).
JOB_RECOVERY_STARTED = "job_recovery_started"


# The statuses of the orphaned jobs a new leader sweeps.
SWEPT_STATUSES = (JobStatus.PENDING, JobStatus.RUNNING, JobStatus.PAUSED)


def cluster_node_names(count: int) -> list[str]:
    """The names of a cluster's nodes: `mn1@127.0.0.1`, `mn2@127.0.0.1`, ..."""
    return [f"mn{number}@{CLUSTER_HOST}" for number in range(1, count + 1)]


class Cluster:
    """The cluster half of InMemoryRuntime (its state is the runtime's own).

    Every node serves the whole cluster: any of them answers for any job. Jobs get their
    coordinators, and agents their nodes, round-robin over the live members in the order of
    their names; the first node is the leader until it dies, and then the first live one.
    """

    def _form_cluster(self, count: int, single_name: str) -> None:
        if count < 1:
            raise ValueError("a cluster has at least one node")
        if count > 1 and not self.release.clusters:
            raise ValueError(f"release {self.release.name} runs as a single node")
        names = [single_name] if count == 1 else cluster_node_names(count)
        self._nodes = {name: dataclasses.replace(self.node, name=name) for name in names}
        # The live members in the order they (re)joined the cluster, and the nodes lost.
        self._members: list[str] = list(names)
        self._lost: list[str] = []
        self._leader = names[0]
        self._store_up = True
        self._store_down_at = 0.0
        self._coordinator_turn = 0
        self._agent_turn = 0

    # -- what a test can read ----------------------------------------------------------------

    @property
    def leader(self) -> str:
        """The node that leads the cluster: the first node until it dies, then the first
        live one (by name) at that moment. A node that comes back does not take it back."""
        return self._leader

    @property
    def live_nodes(self) -> list[str]:
        """The live members, in the order they joined the cluster."""
        return list(self._members)

    @property
    def lost_nodes(self) -> list[str]:
        """The nodes killed and not restarted, in the order they died."""
        return list(self._lost)

    @property
    def state_store_available(self) -> bool:
        return self._store_up

    # -- faults ----------------------------------------------------------------------------

    def kill_node(self, name: str) -> None:
        """Kill the node `name` as `kill -9` would; the other nodes notice at once.

        The node leaves every summary. The live jobs it coordinated are orphaned: their
        records stay `running` (or as they were) and live, their agents keep sending
        heartbeats, but nothing moves them; Pause and Resume are refused ("not running in
        the connected cluster") and Cancel force-writes them (`force cancelled`). Agents of
        live jobs that ran on the node restart on the surviving nodes (round-robin), so
        their `assigned_node` changes, without a word in any history. When the node was the
        leader, the first live node becomes leader and sweeps the pending, running and
        paused orphaned jobs, those orphaned earlier included (not those whose record changed
        within `sweep_guard_seconds`: they stay orphaned for good): it fails those not
        configured for cluster recovery (`job_failed` with the core's reason, no
        `agent_id`) and recovers `cluster_recover` ones (a bare `job_recovery_started`: the
        new coordinator is named nowhere), which keep their status and move on as before
        (a pending one is set up again from the start).

        Raises ValueError for a node that is not a live member, and for the last one.
        """
        if name not in self._members:
            raise ValueError(f"{name} is not a live member of the cluster")
        if len(self._members) == 1:
            raise ValueError(f"{name} is the last live node of the cluster")
        self._members.remove(name)
        self._lost.append(name)
        for job in list(self._jobs.values()):
            if job.status.is_terminal:
                continue
            if job.coordinator == name and not job.orphaned:
                self._orphan(job)
            for agent in job.agents.values():
                if agent.node == name:
                    agent.node = self._place_agent()
                    job.details = None
        if name == self._leader:
            self._leader = self._by_name()[0]
            self._sweep()

    def restart_node(self, name: str) -> None:
        """Start the killed node `name` again: it comes back under the same name, with an
        empty executor pool, and is a member again (listed last by the nodes it joins).
        It leads nothing and takes no orphaned job back. ValueError unless it was killed."""
        if name not in self._lost:
            raise ValueError(f"{name} is not a lost node of the cluster")
        self._lost.remove(name)
        self._members.append(name)

    def state_store_down(self) -> None:
        """Take the core's state store (its Redis) away. The nodes keep running, but every
        answer that reads the store comes back empty: ListJobs lists no job, the summary is
        `{}`, GetJob treats every job as unknown, a history is an empty stream (for any job),
        and SubmitJob is refused (`ManifestInvalidError` with the store's connection error
        as its one problem). Pause, Resume and Cancel still reach the coordinators that run
        jobs (a job none runs is unknown), but what they change is written to no history.
        No job moves until `state_store_up()`, and nothing recorded before is lost."""
        if self._store_up:
            self._store_up = False
            self._store_down_at = self._clock()

    def state_store_up(self) -> None:
        """Bring the state store back: jobs and their histories are whole again and move on.
        After an outage longer than the leases, every live job has lost its lease (its
        coordinator stops renewing it) and the leader, taking its own back, sweeps as a new
        leader does: the jobs' leases lapsed, so it fails (or recovers) every live job old
        enough to be judged, as a real cluster does; younger ones run on until the next
        sweep."""
        if self._store_up:
            return
        self._store_up = True
        for job in self._jobs.values():
            job.details = None
        if self._clock() - self._store_down_at >= LEADER_LEASE_SECONDS:
            for job in self._jobs.values():
                if job.status in SWEPT_STATUSES:
                    job.lease_lost = True
            self._sweep()
        self._kick()

    # -- placement -------------------------------------------------------------------------

    def _by_name(self) -> list[str]:
        """The live members in the order of their names (mn1 before mn2)."""
        order = {name: index for index, name in enumerate(self._nodes)}
        return sorted(self._members, key=order.__getitem__)

    def schedulable_nodes(self, *, excluding: str | None = None) -> list[str]:
        """The live members new work may go to, by name: those node administration has
        not drained or put in maintenance (all of them where the release has none)."""
        nodes = self.services.group("nodes")
        return [
            name
            for name in self._by_name()
            if name != excluding and (nodes is None or nodes.schedulable(name))
        ]

    def _place_coordinator(self) -> str:
        members = self.schedulable_nodes() or self._by_name()
        chosen = members[self._coordinator_turn % len(members)]
        self._coordinator_turn += 1
        return chosen

    def _place_agent(self) -> str:
        members = self.schedulable_nodes() or self._by_name()
        chosen = members[self._agent_turn % len(members)]
        self._agent_turn += 1
        return chosen

    # -- what node administration reads and does to jobs ---------------------------------------

    def jobs_on_node(self, name: str) -> list[str]:
        """The pending, running and paused jobs with an agent on the node or coordinated
        from it, oldest first (none while the state store is down)."""
        if not self._store_up:
            return []
        return [
            job.job_id
            for job in self._jobs.values()
            if job.status in SWEPT_STATUSES and self._touches(job, name)
        ]

    def job_on_node(self, job_id: str, name: str) -> NodeJob | None:
        """What node administration reads of a job and the node; None for a job the state
        store does not hold."""
        job = self._jobs.get(job_id) if self._store_up else None
        if job is None:
            return None
        return NodeJob(
            job_id=job.job_id,
            status=job.status.value,
            job_type=_job_type(job),
            recovery=_recovery(job.manifest),
            agents=sorted(a.node_id for a in job.agents.values() if a.node == name),
            coordinated=job.coordinator == name,
        )

    def move_off_node(self, job_id: str, name: str) -> dict[str, str] | None:
        """Move the job's agents (and its coordination) off the node, onto the other
        schedulable members in turn: each moved agent's new node, or None (nothing moved)
        when no other member may take them."""
        others = self.schedulable_nodes(excluding=name)
        if not others:
            return None
        job = self._jobs[job_id]
        moved: dict[str, str] = {}
        for agent in job.agents.values():
            if agent.node == name:
                agent.node = others[self._agent_turn % len(others)]
                self._agent_turn += 1
                moved[agent.node_id] = agent.node
        if job.coordinator == name:
            job.coordinator = others[self._coordinator_turn % len(others)]
            self._coordinator_turn += 1
        job.details = None
        return moved

    def pause_for_review(self, job_id: str, kind: str, **details: Any) -> None:
        """Pause the job until an operator resumes it, saying why in its history."""
        job = self._jobs[job_id]
        self._set_status(job, JobStatus.PAUSED)
        self._emit(job, kind, **details)

    def record_job_event(self, job_id: str, kind: str, **details: Any) -> None:
        self._emit(self._jobs[job_id], kind, **details)

    def _touches(self, job: _Job, name: str) -> bool:
        return job.coordinator == name or any(a.node == name for a in job.agents.values())

    def _job_nodes(self, job: _Job) -> list[str]:
        """The nodes the job's agents run on, sorted."""
        return sorted({agent.node for agent in job.agents.values()})

    # -- orphans and the leader's sweep ----------------------------------------------------

    def _orphan(self, job: _Job) -> None:
        job.orphaned = True
        job.details = None
        self._active.pop(job.job_id, None)

    def _sweep(self) -> None:
        """What a node does as it takes the leader's lease: every orphaned job not yet ended
        is failed, or recovered when its recovery policy says `cluster_recover`."""
        settled = iso_timestamp(self._clock() - self._sweep_guard)
        for job in list(self._jobs.values()):
            if not (job.orphaned or job.lease_lost) or job.status not in SWEPT_STATUSES:
                continue
            if job.updated_at > settled:
                continue  # too recent to be judged: left as it is
            job.orphaned = job.lease_lost = False
            if _recovery(job.manifest) == CLUSTER_RECOVER:
                self._recover(job)
            else:
                self._fail_orphan(job)

    def _fail_orphan(self, job: _Job) -> None:
        """The leader writes the job failed: its result stays as it was (generation A cores
        write the reason as the job's `error`), and the event names no agent."""
        result = job.result
        self._finish(job, JobStatus.FAILED, ev.JOB_FAILED, reason=ORPHAN_FAILURE)
        if self.release.generation_a_documents:
            job.result, job.error = result, ORPHAN_FAILURE
            job.details = None

    def _recover(self, job: _Job) -> None:
        """Start the job again under a new coordinator. A running or paused job keeps its
        status and its agents; a pending one is set up from the start again (and so is
        scheduled anew, naming its coordinator)."""
        self._emit(job, JOB_RECOVERY_STARTED)
        if job.status is JobStatus.PENDING:
            job.coordinator = None
            job.stage = 0
            self._emit(job, ev.JOB_PENDING)
        else:
            job.coordinator = self._place_coordinator()
        self._set_status(job, job.status)  # moving again, unless it is paused

    # -- the summary -------------------------------------------------------------------------

    def _member_documents(self, viewer: str) -> list[dict[str, Any]]:
        """The live members as the summary of `viewer` lists them: itself first, then the
        others in the order they joined."""
        others = [name for name in self._members if name != viewer]
        return [self._member(name, viewer) for name in [viewer, *others]]

    def _member(self, name: str, viewer: str) -> dict[str, Any]:
        """One member as `viewer` describes it. The viewer works out every member's
        `connected_nodes` from its own connections: a node itself, then the viewer's
        other connections, never the viewer (unless it is the node described)."""
        node = self._nodes[name]
        others = [other for other in self._members if other not in (name, viewer)]
        member = {
            "name": name,
            "connected_nodes": [name, *others],
            "self?": name == viewer,
            "scheduler_hint": "cluster_member" if name == viewer else "remote_member",
            "executor_pools": {"default": self._pool(node.name, node.pool_capacity)},
            "hardware": self._hardware(node),
        }
        nodes = self.services.group("nodes")
        if nodes is not None:  # 1.2.5 and newer: the node's state and the store it uses
            member.update(nodes.summary_fields(name))
        return member

    def _pool(self, name: str, capacity: int) -> dict[str, int]:
        """The node's default executor pool: the executors of its running jobs hold slots,
        those of pending jobs wait for one."""
        active = waiting = 0
        for job in self._jobs.values():
            running = job.live and job.status is JobStatus.RUNNING
            pending = job.status is JobStatus.PENDING
            if running or pending:
                here = _executors_on(job.agents.values(), name)
                active += here if running else 0
                waiting += here if pending else 0
        in_use = min(active, capacity)
        return {
            "capacity": capacity,
            "in_use": in_use,
            "available": capacity - in_use,
            "queued": waiting + active - in_use,
            "active": in_use,
        }


def _executors_on(agents: Iterable[_Agent], name: str) -> int:
    return sum(1 for agent in agents if agent.executor and agent.node == name)
