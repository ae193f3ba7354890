"""ClusterService's node administration (1.2.5 and newer): node states (healthy, joining,
draining, maintenance, disconnected), the join handshake, AddNode, reconciling and
draining a node, cancelling a drain, maintenance, and the drain status.

Each node's state is kept here; the system summary's nodes and GetResource's read it, and
the cluster places no new work on a node that is draining or in maintenance. ReconcileNode
and DrainNode run as operations on 1.2.31 (waiting until they settle), and item by item in
the call itself on 1.2.5. docs/LATER_SERVICES.md says where each behaviour comes from.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from mn_api.adapters.memory.services._base import (
    CLUSTER,
    Answer,
    CoreRefusal,
    Request,
    Streaming,
    Unary,
    dumps,
    internal,
    iso_now,
    lenient_object,
    quoted,
    versioned,
)
from mn_api.adapters.memory.services.node_actions import (
    NodeActions,
    Outcome,
    drain_counters,
    drain_status,
)

if TYPE_CHECKING:
    from mn_api.adapters.memory.runtime import InMemoryRuntime

ACTIVE = ("healthy", "joining")
OPERATOR = ("maintenance", "draining")
# The node states kept: past this, the oldest states of nodes outside the cluster go.
MAX_STATES = 1024
# Where the simulated cluster's coordination store (its Redis) is said to be.
REDIS_HOST, REDIS_PORT, REDIS_NAMESPACE = "127.0.0.1", 6379, "mirror_neuron"
DEFAULT_GRPC_PORT, DIST_PORT = 50051, 4370
JOIN_REFUSED = "valid MN_NETWORK_JOIN_TOKEN is required"


class Nodes:
    name: ClassVar[str] = "nodes"

    def __init__(self, runtime: InMemoryRuntime) -> None:
        self._runtime = runtime
        self._states: dict[str, dict[str, Any]] = {}
        self._actions = NodeActions(runtime, self)
        # The join token NetworkHandshake asks for (the core's MN_NETWORK_JOIN_TOKEN; none:
        # every handshake is refused), and the token a handshake hands the joining node.
        self.join_token: str | None = None
        self.auth_token = ""
        # The cluster's one coordination store, as every node reports it.
        self._identity = "redis-" + secrets.token_hex(8)
        self._redis_password = secrets.token_urlsafe(12)

    def unary(self) -> Mapping[str, Unary]:
        return {
            CLUSTER + "NetworkHandshake": self._handshake,
            CLUSTER + "AddNode": self._add_node,
            CLUSTER + "ReconcileNode": self._reconcile_node,
            CLUSTER + "DrainNode": self._drain_node,
            CLUSTER + "CancelNodeDrain": self._cancel_drain,
            CLUSTER + "SetNodeMaintenance": self._maintenance,
            CLUSTER + "GetNodeDrainStatus": self._drain_status,
        }

    def streaming(self) -> Mapping[str, Streaming]:
        return {}

    def reset(self) -> None:
        self._states.clear()

    # -- node states -----------------------------------------------------------------------------

    def state(self, name: str) -> dict[str, Any]:
        """The node's stored state: a node of the cluster that nothing changed is healthy;
        any other name has none (`{"node": name}`)."""
        stored = self._states.get(name)
        if stored is not None:
            return dict(stored)
        if name in self._runtime.live_nodes or name in self._runtime.lost_nodes:
            return {"node": name, "status": "healthy", "scheduling_eligible": True}
        return {"node": name}

    def mark(self, name: str, status: str, updates: Mapping[str, Any]) -> dict[str, Any]:
        record = {**self.state(name), **updates, "status": status, "node": name}
        record["updated_at"] = iso_now(self._runtime._clock)
        self._states.pop(name, None)
        self._states[name] = record
        if len(self._states) > MAX_STATES:
            members = {*self._runtime.live_nodes, *self._runtime.lost_nodes}
            oldest = next((n for n in self._states if n not in members), None)
            if oldest is not None:
                del self._states[oldest]
        return dict(record)

    def disconnect(self, name: str) -> None:
        """RemoveNode: the node is taken out by an operator and gets no work until AddNode
        connects it again."""
        self.mark(name, "disconnected", {"operator_disconnect": True, "scheduling_eligible": False})

    def schedulable(self, name: str) -> bool:
        state = self._states.get(name)
        if state is None:
            return True
        return state.get("status") in ACTIVE and state.get("scheduling_eligible") is not False

    def summary_fields(self, name: str) -> dict[str, Any]:
        """What the system summary says of a node beside its own fields."""
        state = self.state(name)
        return {
            "status": state.get("status", "healthy"),
            "scheduling_eligible": state.get("scheduling_eligible") is not False,
            "coordination_store": self.coordination_store(),
        }

    def coordination_store(self) -> dict[str, Any]:
        if not self._runtime.state_store_available:
            return {}
        return {
            "identity": self._identity,
            "namespace": REDIS_NAMESPACE,
            "role": "master",
            "writable_primary": True,
            "healthy": True,
        }

    def jobs_on(self, node: str) -> list[str]:
        return self._runtime.jobs_on_node(node)

    def reconcile_item(self, job_id: str, node: str, options: dict[str, Any]) -> Outcome:
        return self._actions.reconcile_item(job_id, node, options)

    def drain_item(self, job_id: str, node: str, options: dict[str, Any]) -> Outcome:
        return self._actions.drain_item(job_id, node, options)

    # -- joining ---------------------------------------------------------------------------------

    async def _handshake(self, request: Request) -> Answer:
        return self.handshake(request, node=None, host=REDIS_HOST, port=0)

    def handshake(self, request: Request, *, node: str | None, host: str, port: int) -> Answer:
        """NetworkHandshake answered by the node `node` (None: the first live one) serving
        on host:port: the joining node (when named) is recorded as joining."""
        token = str(request.get("token", "")).encode()
        wanted = (self.join_token or "").encode()
        if not wanted or not hmac.compare_digest(token, wanted):
            raise CoreRefusal("UNAUTHENTICATED", JOIN_REFUSED)
        joining = str(request.get("node_name", "")).strip()
        if joining:
            info = lenient_object(str(request.get("node_info_json", "")))
            status = self.state(joining).get("status")
            self.mark(
                joining,
                status if status in ("healthy", *OPERATOR) else "joining",
                {**info, "operator_disconnect": False, "scheduling_eligible": True},
            )
        serving = node or self._runtime.live_nodes[0]
        port = port or DEFAULT_GRPC_PORT
        password = self._redis_password
        return {
            "node_name": serving,
            "runtime_mode": "full",
            "grpc_host": host,
            "grpc_port": port,
            "dist_port": DIST_PORT,
            "redis_host": REDIS_HOST,
            "redis_port": REDIS_PORT,
            "redis_url": f"redis://:{password}@{REDIS_HOST}:{REDIS_PORT}/0",
            "cluster_nodes": ",".join(self._runtime.live_nodes),
            "network_only": False,
            "node_info_json": dumps(self._node_info(serving, host, port)),
            "grpc_auth_token": self.auth_token,
            "grpc_admin_token": "",
            "version": 1,
        }

    def _node_info(self, name: str, host: str, port: int) -> dict[str, Any]:
        node = self._runtime.node
        target = f"{host}:{port}"
        return {
            "node_name": name,
            "node_role": "full",
            "grpc_host": host,
            "grpc_port": port,
            "host_shared_storage_root": "/var/lib/mirrorneuron/shared",
            "runtime_shared_storage_root": "/var/lib/mirrorneuron/shared",
            "syncthing": {"enabled": False},
            "redis_ha": {"enabled": False},
            "coordination_store": self.coordination_store(),
            "native_sdk_grpc": {
                "enabled": True,
                "host": host,
                "port": port,
                "target": target,
                "bind_host": host,
                "capabilities": [],
            },
            "display_name": name.split("@", 1)[0],
            "hostname": name.split("@", 1)[-1],
            "cpu_cores": node.logical_processors,
            "cpu_model": "simulated",
            "gpu_count": node.gpus,
            "gpu_model": "",
            "gpu_models": [],
            "memory_gb": node.memory_mb // 1024,
            "runtime_models": [],
            "services": [],
            "version": 1,
        }

    async def _add_node(self, request: Request) -> Answer:
        name = str(request.get("node_name", ""))
        local, _, host = name.partition("@")
        if not local or not host:
            raise internal(f"invalid node name {quoted(name)}: expected name@host")
        if name not in self._runtime.live_nodes:
            raise internal(f"failed to connect to {name}")
        stored = self._states.get(name)
        if stored is None or stored.get("operator_disconnect") is True:
            self.mark(name, "healthy", {"operator_disconnect": False, "scheduling_eligible": True})
        elif (
            stored.get("status") not in OPERATOR and stored.get("scheduling_eligible") is not False
        ):
            self.mark(name, "healthy", {"operator_disconnect": False})
        return {"node_name": name, "status": "connected", "version": 1}

    # -- reconcile and drain -----------------------------------------------------------------------

    async def _reconcile_node(self, request: Request) -> Answer:
        options = _options(request, ("reason", "dry_run"))
        document = await self._settle("reconcile_node", options)
        jobs = [item.get("result") or {} for item in document["items"].values()]
        tally: dict[str, Any] = {"checked": len(jobs)}
        tally.update(dict.fromkeys(("recovered", "paused", "blocked", "skipped", "failed"), 0))
        for job in jobs:
            action = {"paused_for_review": "paused"}.get(str(job.get("action")), job.get("action"))
            tally[action if action in tally and action != "checked" else "skipped"] += 1
        return {"result_json": dumps(versioned({**tally, "jobs": jobs})), "version": 1}

    async def _drain_node(self, request: Request) -> Answer:
        keys = ("reason", "dry_run", "deadline_ms", "ignore_system_jobs")
        document = await self._settle("drain_node", _options(request, keys))
        actions = [item.get("result") or {} for item in document["items"].values()]
        counters = drain_counters(actions)
        # A waiting operation (deferred items) leaves the drain going.
        status = "draining" if document["status"] == "waiting" else drain_status(counters)
        result: dict[str, Any] = {
            "node": document.get("node_name"),
            "status": status,
            "actions": actions,
            "counters": counters,
        }
        if "operation_id" in document:
            result["operation_id"] = document["operation_id"]
        return {"result_json": dumps(versioned(result)), "version": 1}

    async def _settle(self, kind: str, options: dict[str, Any]) -> dict[str, Any]:
        """The operation of `kind` once settled (1.2.31), or its items run here (1.2.5);
        every refusal is INTERNAL with the core's quoted text."""
        operations = self._runtime.services.group("operations")
        try:
            if operations is not None:
                created = await operations.start(kind, options)
                return await operations.wait(created["operation_id"], settled=True)  # type: ignore[no-any-return]
            return self._run_here(kind, options)
        except CoreRefusal as refused:
            raise internal(quoted(refused.message)) from None

    def _run_here(self, kind: str, options: dict[str, Any]) -> dict[str, Any]:
        node = options.get("node_name")
        if not isinstance(node, str) or not node.strip():
            raise CoreRefusal("INVALID_ARGUMENT", "node_name is required")
        run = self.reconcile_item if kind == "reconcile_node" else self.drain_item
        items = {}
        for job_id in self.jobs_on(node):
            status, result, error = run(job_id, node, options)
            items[job_id] = {"item_id": job_id, "status": status, "result": result, "error": error}
        waiting = any(item["status"] == "deferred" for item in items.values())
        return {"node_name": node, "status": "waiting" if waiting else "completed", "items": items}

    # -- drain and maintenance by hand ------------------------------------------------------------

    async def _cancel_drain(self, request: Request) -> Answer:
        name = str(request.get("node_name", ""))
        reason = str(request.get("reason", "")) or "operator cancelled node drain"
        eligible = bool(request.get("mark_eligible", False))
        now = iso_now(self._runtime._clock)
        drain = {
            **(self.state(name).get("drain") or {}),
            "status": "cancelled",
            "reason": reason,
            "completed_at": now,
            "cancelled_at": now,
        }
        state = self.mark(
            name,
            "healthy" if eligible else "maintenance",
            {"scheduling_eligible": eligible, "drain": drain},
        )
        return _result(
            {
                "node": name,
                "status": "cancelled",
                "scheduling_eligible": eligible,
                "reason": reason,
                "node_state": state,
            }
        )

    async def _maintenance(self, request: Request) -> Answer:
        name = str(request.get("node_name", ""))
        enabled = bool(request.get("enabled", False))
        reason = str(request.get("reason", "")) or "operator changed node maintenance"
        now = iso_now(self._runtime._clock)
        maintenance: dict[str, Any] = {"enabled": enabled, "reason": reason, "updated_at": now}
        if not enabled:
            maintenance["disabled_at"] = now
        status = "maintenance" if enabled else "healthy"
        state = self.mark(
            name, status, {"scheduling_eligible": not enabled, "maintenance": maintenance}
        )
        return _result(
            {
                "node": name,
                "status": status,
                "scheduling_eligible": not enabled,
                "maintenance": maintenance,
                "node_state": state,
            }
        )

    async def _drain_status(self, request: Request) -> Answer:
        name = str(request.get("node_name", ""))
        state = self.state(name)
        return _result(
            {
                "node": name,
                "status": state.get("status", "unknown"),
                "scheduling_eligible": state.get("scheduling_eligible", True),
                "drain": state.get("drain") or {},
                "maintenance": state.get("maintenance") or {},
                "node_state": state,
            }
        )


def _result(document: dict[str, Any]) -> Answer:
    return {"result_json": dumps(versioned(document)), "version": 1}


def _options(request: Request, keys: tuple[str, ...]) -> dict[str, Any]:
    """A ReconcileNode or DrainNode request as an operation's options: what was given
    (an empty reason and a deadline of 0 are not)."""
    options: dict[str, Any] = {"node_name": str(request.get("node_name", ""))}
    for key in keys:
        value = request.get(key)
        if key == "reason" and not value:
            continue
        if key == "deadline_ms" and not (isinstance(value, int) and value > 0):
            continue
        options[key] = value
    return options
