"""RuntimeReport: what the later releases' operator routes tell, from what the core reports:
its nodes, its status, its health, a doctor's findings, and taking a node out."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from mn_api.application.cluster import ClusterWatch
from mn_api.application.ports import RuntimePort, SharedStateProbe
from mn_api.domain.cluster import NodeSighting, with_lost_nodes
from mn_api.domain.errors import DomainError, NodeNotFoundError
from mn_api.domain.events import iso_timestamp
from mn_api.domain.views import system_summary_view


class RuntimeReport:
    def __init__(
        self,
        runtime: RuntimePort,
        timeout_seconds: float,
        shared_state: SharedStateProbe | None = None,
        cluster: ClusterWatch | None = None,
    ) -> None:
        self._runtime = runtime
        self._timeout = timeout_seconds
        self._shared_state = shared_state
        self._cluster = cluster

    async def nodes(self) -> list[dict[str, Any]]:
        """The members, then the nodes that left the cluster (marked `lost`)."""
        summary = await self._summary()
        if self._cluster is not None:
            summary = with_lost_nodes(summary, self._cluster.membership)
        return _nodes(summary)

    def _lost(self) -> list[NodeSighting]:
        return self._cluster.membership.lost() if self._cluster is not None else []

    async def status(self) -> dict[str, Any]:
        """The cluster as the core reports it: nodes, executor capacity, jobs by status;
        `degraded`, naming them and what they could run, while nodes it had are lost."""
        summary = await self._summary()
        nodes = _nodes(summary)
        jobs = summary.get("jobs") if isinstance(summary.get("jobs"), list) else []
        by_status: dict[str, int] = {}
        for job in jobs:
            status = job.get("status") if isinstance(job, Mapping) else None
            if isinstance(status, str):
                by_status[status] = by_status.get(status, 0) + 1
        capacity, available = _executors(nodes)
        lost = self._lost()
        report: dict[str, Any] = {
            "status": "degraded" if lost else "ok" if nodes else "no_nodes",
            "nodes": {"total": len(nodes), "names": [str(n.get("name", "")) for n in nodes]},
            "executors": {"capacity": capacity, "available": available},
            "jobs": {"total": len(jobs), "by_status": by_status},
        }
        if lost:
            report["nodes"]["lost"] = [_lost_node(node) for node in lost]
            report["executors"]["lost_capacity"] = sum(node.executors for node in lost)
        return report

    async def health(self) -> dict[str, Any]:
        """Whether the core answers within the readiness deadline, and how fast; raises
        the error that says why when it does not."""
        started = time.perf_counter()
        await self._runtime.ping(self._timeout)
        return {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 1)}

    async def doctor(self) -> dict[str, Any]:
        """Each check with its finding; `status` is `ok` only when every one passed."""
        checks: list[dict[str, Any]] = []
        summary: Mapping[str, Any] = {}
        try:
            health = await self.health()
            summary = await self._summary()
            checks.append({"id": "runtime", "ok": True, **health})
        except DomainError as error:  # one finding for the core, whichever call failed
            checks.append({"id": "runtime", "ok": False, "message": error.detail})
        if self._shared_state is not None:
            try:
                await self._shared_state.ping(self._timeout)
                checks.append({"id": "shared_state", "ok": True, "message": "Redis answers"})
            except DomainError as error:
                checks.append({"id": "shared_state", "ok": False, "message": error.detail})
        lost = self._lost()
        if summary or lost:
            nodes = _nodes(summary)
            message = f"{len(nodes)} node(s) in the cluster" if nodes else "no node"
            if lost:
                message += "; lost: " + "; ".join(
                    f"{node.name} (left at {iso_timestamp(node.lost_at or node.last_seen_at)}, "
                    f"{node.executors} executor slot(s))"
                    for node in lost
                )
            checks.append({"id": "nodes", "ok": bool(nodes) and not lost, "message": message})
        if summary:
            capacity = _executors(_nodes(summary))[0]
            checks.append(
                {
                    "id": "executors",
                    "ok": capacity > 0,
                    "message": f"executor capacity {capacity}",
                }
            )
        ok = all(check["ok"] for check in checks)
        return {"status": "ok" if ok else "degraded", "checks": checks}

    async def remove_node(self, node_name: str) -> dict[str, str]:
        return {"node_name": node_name, "status": await self._runtime.remove_node(node_name)}

    async def leave(self) -> dict[str, str]:
        """Take out the node the gateway is connected to (the one the core calls itself)."""
        nodes = _nodes(await self._summary())
        own = next((n for n in nodes if n.get("self") is True), None)
        if own is None or not isinstance(own.get("name"), str):
            raise NodeNotFoundError("(the node this gateway is connected to)")
        return await self.remove_node(own["name"])

    async def _summary(self) -> Mapping[str, Any]:
        summary = system_summary_view((await self._runtime.system_summary()).value)
        return summary if isinstance(summary, Mapping) else {}


def _executors(nodes: list[dict[str, Any]]) -> tuple[int, int]:
    """The executor slots of these nodes' pools: in all, and free now."""
    capacity = available = 0
    for node in nodes:
        pools = node.get("executor_pools")
        for pool in pools.values() if isinstance(pools, Mapping) else ():
            if isinstance(pool, Mapping):
                capacity += _count(pool.get("capacity"))
                available += _count(pool.get("available"))
    return capacity, available


def _lost_node(node: NodeSighting) -> dict[str, Any]:
    lost = {"name": node.name, "last_seen_at": iso_timestamp(node.last_seen_at)}
    if node.lost_at is not None:
        lost["lost_at"] = iso_timestamp(node.lost_at)
    return {**lost, "executor_capacity": node.executors}


def _nodes(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    nodes = summary.get("nodes")
    return [n for n in nodes if isinstance(n, dict)] if isinstance(nodes, list) else []


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0
