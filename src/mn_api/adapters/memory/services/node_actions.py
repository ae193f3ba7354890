"""What reconciling and draining a node does to each of its jobs (the items of the
reconcile_node and drain_node operations, and of ReconcileNode and DrainNode).

Reconciling a job on a node: a job not configured for cluster recovery is paused for an
operator's review; a cluster_recover job coordinated from the node is restarted elsewhere,
one whose agents alone are there has them moved, and a system or sysbatch job waits for
its node. Draining: system jobs are left alone (unless asked), batch jobs may finish until
the drain's deadline, and every other job is reconciled away from the node. Each answers
the core's action document; docs/LATER_SERVICES.md gives the sources.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from mn_api.adapters.memory.cluster import NodeJob
from mn_api.adapters.memory.services._base import iso_now

if TYPE_CHECKING:
    from mn_api.adapters.memory.runtime import InMemoryRuntime
    from mn_api.adapters.memory.services.nodes import Nodes

ACTIVE_JOBS = ("pending", "running", "paused")
SYSTEM_TYPES = ("system", "sysbatch")
DEFAULT_DEADLINE_MS = 1_800_000
# When a blocked recovery is tried again (the core's first retry of a recovery eval).
RETRY_MS = 5_000

# An item's outcome as an operation records it: status, result, error.
Outcome = tuple[str, dict[str, Any], str | None]


def given(value: Any) -> bool:
    """Whether an option counts as given (the core's `||`: only nil and false do not)."""
    return value is not None and value is not False


class NodeActions:
    """The per-job actions, over the runtime's jobs and the node states of `nodes`."""

    def __init__(self, runtime: InMemoryRuntime, nodes: Nodes) -> None:
        self._runtime = runtime
        self._nodes = nodes

    def _now(self) -> str:
        return iso_now(self._runtime._clock)

    def _after(self, milliseconds: int) -> str:
        moment = datetime.fromtimestamp(self._runtime._clock(), UTC)
        return iso_now(lambda: (moment + timedelta(milliseconds=milliseconds)).timestamp())

    def _due(self, deadline_at: Any) -> bool:
        try:
            deadline = datetime.fromisoformat(str(deadline_at).replace("Z", "+00:00"))
        except ValueError:
            return True
        return deadline.timestamp() <= self._runtime._clock()

    # -- reconcile ------------------------------------------------------------------------------

    def reconcile_item(self, job_id: str, node: str, options: dict[str, Any]) -> Outcome:
        job = self._runtime.job_on_node(job_id, node)
        if job is None:
            return "failed", {}, f'"job {job_id} was not found"'
        reason = options["reason"] if given(options.get("reason")) else None
        result = self.reconcile(job, node, reason=reason, dry_run=given(options.get("dry_run")))
        action = result["action"]
        if action == "failed":
            return "failed", result, result.get("reason")
        return ("deferred" if action == "blocked" else action), result, None

    def reconcile(self, job: NodeJob, node: str, *, reason: Any, dry_run: bool) -> dict[str, Any]:
        """One job's reconciliation away from the node (the core's reconcile_job)."""
        if job.status not in ACTIVE_JOBS:
            return _action(job, "skipped", f"job is {job.status}")
        if not job.agents and not job.coordinated:
            return _action(job, "skipped", f"job is not affected by {node}")
        why = reason if reason is not None else f"node {node} is unavailable"
        extra = {"failed_node": node, "affected_agents": job.agents}
        if job.recovery != "cluster_recover":
            if not dry_run:
                self._runtime.pause_for_review(
                    job.job_id, "job_paused_for_manual_restart", reason=why, **extra
                )
            return _action(job, "paused_for_review", why, extra)
        if job.coordinated:
            return self._recover(job, node, why, dry_run, whole=True)
        if job.job_type in SYSTEM_TYPES:
            waiting = (
                f"{job.job_type} allocations are scoped to their original runtime node; "
                f"waiting for {node} to recover instead of relocating them"
            )
            return _action(job, "blocked", waiting, {**extra, "wait_until": self._after(RETRY_MS)})
        if not job.agents:
            return _action(job, "skipped", f"job has no scheduler placements on {node}")
        return self._recover(job, node, why, dry_run, whole=False)

    def _recover(
        self, job: NodeJob, node: str, reason: Any, dry_run: bool, *, whole: bool
    ) -> dict[str, Any]:
        mode = "job" if whole else "agents"
        affected = [] if whole else job.agents
        if not self._runtime.schedulable_nodes(excluding=node):
            blocked = f"no schedulable node other than {node} can take the job"
            extra = {"failed_node": node, "affected_agents": affected}
            return _action(job, "blocked", blocked, {**extra, "wait_until": self._after(RETRY_MS)})
        if dry_run:
            said = "would restart job" if whole else "would reschedule agents"
            return _action(job, "recovered", said, {"mode": mode, "affected_agents": job.agents})
        moved = self._runtime.move_off_node(job.job_id, node) or {}
        kind = "job_rescheduled" if whole else "job_agents_rescheduled"
        self._runtime.record_job_event(
            job.job_id, kind, reason=reason, failed_node=node, affected_agents=sorted(moved)
        )
        said = "job restarted" if whole else "agents rescheduled"
        return _action(job, "recovered", said, {"mode": mode, "placements": moved})

    # -- drain ----------------------------------------------------------------------------------

    def drain_item(self, job_id: str, node: str, options: dict[str, Any]) -> Outcome:
        action = self.drain_job(job_id, node, options)
        status = str(action.get("status", "skipped"))
        if status == "failed":
            return "failed", action, action.get("reason")
        if status in ("waiting", "blocked", "blocked_no_placement"):
            return "deferred", action, None
        return status, action, None

    def drain_job(self, job_id: str, node: str, options: dict[str, Any]) -> dict[str, Any]:
        """Drain one job off the node, continuing the node's drain (the core's drain_job):
        the node is marked draining first, and its drain judged again from this job."""
        context = self._context(node, options)
        if not context["dry_run"]:
            drain = _drain(context, "draining", None, {})
            self._nodes.mark(node, "draining", {"scheduling_eligible": False, "drain": drain})
        job = self._runtime.job_on_node(job_id, node)
        actions = []
        if job is not None and job.status in ACTIVE_JOBS and (job.agents or job.coordinated):
            actions.append(self._process(job, node, context))
        self._judge(node, context, actions)
        if actions:
            return actions[0]
        return {"job_id": job_id, "status": "skipped", "reason": "job was not selected"}

    def _context(self, node: str, options: dict[str, Any]) -> dict[str, Any]:
        existing = self._nodes.state(node).get("drain") or {}
        deadline_ms = options.get("deadline_ms", DEFAULT_DEADLINE_MS)
        reason = next(
            (r for r in (options.get("reason"), existing.get("reason")) if given(r)),
            "operator requested node drain",
        )
        ignore = options.get("ignore_system_jobs", existing.get("ignore_system_jobs", True))
        return {
            "dry_run": given(options.get("dry_run")),
            "reason": reason,
            "ignore_system_jobs": ignore is not False,
            "deadline_ms": deadline_ms,
            "started_at": existing.get("started_at") or self._now(),
            "deadline_at": existing.get("deadline_at") or self._after(int(deadline_ms)),
        }

    def _process(self, job: NodeJob, node: str, context: dict[str, Any]) -> dict[str, Any]:
        affected = job.agents
        kind = job.job_type
        if not affected and not job.coordinated:
            return _drained(job, "skipped", f"job has no placements on {node}")
        if context["ignore_system_jobs"] and kind in SYSTEM_TYPES:
            return _drained(job, "ignored", f"{kind} job is ignored during drain")
        if kind in ("batch", "sysbatch") and not self._due(context["deadline_at"]):
            text = f"{kind} job is allowed to finish before drain deadline"
            return _drained(job, "waiting", text)
        dry_run = context["dry_run"]
        result = self.reconcile(job, node, reason=context["reason"], dry_run=dry_run)
        reconciled = _tally([result])
        migrated = "would_migrate" if dry_run else "migrated"
        said = "would migrate during drain" if dry_run else "migrated during drain"
        for key, status, text in (
            ("recovered", migrated, said),
            ("blocked", "blocked", "drain migration is blocked"),
            ("paused", "paused_for_review", "drain migration paused for review"),
            ("failed", "failed", "drain migration failed"),
        ):
            if reconciled[key]:
                return _drained(job, status, text, {"reconcile": reconciled})
        text = "drain reconciliation did not move this job"
        return _drained(job, "skipped", text, {"reconcile": reconciled})

    def _judge(self, node: str, context: dict[str, Any], actions: list[dict[str, Any]]) -> None:
        """The node's drain as these actions leave it: complete (the node goes into
        maintenance), or still draining; unchanged by a dry run."""
        if context["dry_run"]:
            return
        counters = drain_counters(actions)
        status = drain_status(counters)
        completed = self._now() if status == "complete" else None
        self._nodes.mark(
            node,
            "maintenance" if status == "complete" else "draining",
            {"scheduling_eligible": False, "drain": _drain(context, status, completed, counters)},
        )


def drain_counters(actions: list[dict[str, Any]]) -> dict[str, int]:
    counters: dict[str, int] = {"checked": len(actions)}
    counters.update(Counter(str(a.get("status") or "unknown") for a in actions))
    return counters


def drain_status(counters: dict[str, int]) -> str:
    if counters.get("failed") or counters.get("blocked"):
        return "blocked_no_placement"
    if counters.get("paused_for_review"):
        return "paused_for_review"
    if counters.get("waiting"):
        return "draining"
    return "complete"


def _tally(results: list[dict[str, Any]]) -> dict[str, Any]:
    """A reconciliation's totals over its jobs (the core's reconcile_node answer)."""
    tally: dict[str, Any] = dict.fromkeys(
        ("recovered", "paused", "blocked", "skipped", "failed"), 0
    )
    for result in results:
        action = result.get("action")
        key = {"paused_for_review": "paused"}.get(str(action), str(action))
        tally[key if key in tally else "skipped"] += 1
    return {"checked": len(results), **tally, "jobs": results}


def _action(
    job: NodeJob, action: str, reason: Any, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {"job_id": job.job_id, "action": action, "reason": reason, **(extra or {})}


def _drained(
    job: NodeJob, status: str, reason: str, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "job_type": job.job_type,
        "status": status,
        "reason": reason,
        "affected_agents": job.agents,
        **(extra or {}),
    }


def _drain(
    context: dict[str, Any], status: str, completed_at: str | None, counters: dict[str, int]
) -> dict[str, Any]:
    return {
        "status": status,
        "started_at": context["started_at"],
        "deadline_at": context["deadline_at"],
        "deadline_ms": context["deadline_ms"],
        "reason": context["reason"],
        "ignore_system_jobs": context["ignore_system_jobs"],
        "completed_at": completed_at,
        "counters": counters,
    }
