"""What the gateway adds to a core's documents so that every client finds what it reads.

Real cores name flags the Elixir way (`self?`, `running?`, `paused?`) and never give an
agent its template `type` or its outbound edges; the Web UI and the older CLIs read `self`,
`running`, `paused`, `type` and `metadata.outbound_edges`. Each is added beside the core's
own field, never in its place, and only when the core left it out: what the core sent
stays as it sent it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mn_api.domain.graph import DEFAULT_TEMPLATE

# Flags a client reads without the trailing question mark.
_FLAG_ALIASES = (("running?", "running"), ("paused?", "paused"))


def _declared(topology: Mapping[str, Any] | None) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Each declared node's template type, and the nodes each one sends to."""
    types: dict[str, str] = {}
    targets: dict[str, list[str]] = {}
    if topology is None:
        return types, targets
    for node in topology.get("nodes") or ():
        if isinstance(node, Mapping) and isinstance(node.get("node_id"), str):
            kind = node.get("type")
            types[node["node_id"]] = kind if isinstance(kind, str) and kind else DEFAULT_TEMPLATE
    for edge in topology.get("edges") or ():
        if not isinstance(edge, Mapping):
            continue
        source, target = edge.get("from_node"), edge.get("to_node")
        if isinstance(source, str) and isinstance(target, str):
            sent_to = targets.setdefault(source, [])
            if target not in sent_to:
                sent_to.append(target)
    return types, targets


def _fill_agent(
    agent: dict[str, Any],
    types: Mapping[str, str],
    targets: Mapping[str, list[str]],
    job_paused: bool,
) -> None:
    for core_name, alias in _FLAG_ALIASES:
        flag = agent.get(core_name)
        if flag is True or flag is False:
            agent.setdefault(alias, flag)
    if "sandbox_name" in agent and agent["sandbox_name"] is None:
        del agent["sandbox_name"]  # generation A: an agent that ran in no sandbox
    lease = agent.get("lease")
    if isinstance(lease, dict) and lease and all(v is None for v in lease.values()):
        del agent["lease"]  # generation A: an agent that holds no executor lease
    if job_paused and "paused" in agent:
        # Generation A cores leave `paused?` false on the agents of a paused job.
        agent["paused"] = True
    agent_id = agent.get("agent_id")
    if not isinstance(agent_id, str):
        return
    if "type" not in agent and agent_id in types:
        agent["type"] = types[agent_id]
    if "metadata" not in agent:
        agent["metadata"] = {
            "paused": agent.get("paused") is True,
            "outbound_edges": list(targets.get(agent_id, ())),
        }


# How much of a job's details an answer carries (`?include=`): everything (the default,
# what every client has always had), the job and its summary, or the job alone.
INCLUDES = ("full", "summary", "compact")
RECENT_EVENTS = 25


def included(details: Any, include: str) -> Any:
    """The part of a job's details `include` asks for."""
    if include == "full" or not isinstance(details, dict):
        return details
    keep = ("job", "summary") if include == "summary" else ("job",)
    return {key: details[key] for key in keep if key in details}


def job_details_view(details: Any, topology: Mapping[str, Any] | None) -> Any:
    """A job's details with the fields clients read beside the core's own, filled in place
    (the caller owns `details`: a document parsed for this request).

    `topology` is the job's declared nodes and edges, when the gateway knows them.
    """
    if not isinstance(details, dict):
        return details
    job = details.get("job")
    status = job.get("status") if isinstance(job, dict) else None
    if isinstance(job, dict) and "result" in job and job["result"] is None:
        del job["result"]  # generation A cores write a result that is not there yet as null
    agents = details.get("agents")
    if isinstance(agents, list) and agents:
        types, targets = _declared(topology)
        for agent in agents:
            if isinstance(agent, dict):
                _fill_agent(agent, types, targets, status == "paused")
    return details


def system_summary_view(summary: Any) -> Any:
    """The cluster summary with `self` beside each node's `self?`."""
    if not isinstance(summary, Mapping):
        return summary
    nodes = summary.get("nodes")
    if not isinstance(nodes, list):
        return summary
    view = dict(summary)
    view["nodes"] = [_node_view(node) if isinstance(node, Mapping) else node for node in nodes]
    return view


def _node_view(node: Mapping[str, Any]) -> dict[str, Any]:
    view = dict(node)
    if "self" not in view and isinstance(view.get("self?"), bool):
        view["self"] = view["self?"]
    hardware = view.get("hardware")
    if isinstance(hardware, Mapping):
        view["hardware"] = _hardware_view(hardware)
    return view


def _hardware_view(hardware: Mapping[str, Any]) -> dict[str, Any]:
    """A node's hardware in one shape, whatever the release sent: `gpu` a list of devices
    (with `gpu_count`, and `gpu_status` for a core's word such as "Not available"), and
    memory whose `total_bytes` comes with `available_bytes` or not at all: no core tells
    the memory in use, and a total alone reads as all of it used. The total is then kept
    as `capacity_bytes` (beside the core's `total_mb`)."""
    view = dict(hardware)
    gpu = view.get("gpu")
    if isinstance(gpu, Mapping):
        devices = gpu.get("devices")
        view["gpu"] = (
            [d for d in devices if isinstance(d, Mapping)] if isinstance(devices, list) else []
        )
        count = gpu.get("count")
        view["gpu_count"] = count if isinstance(count, int) else len(view["gpu"])
    elif isinstance(gpu, str):
        view["gpu"], view["gpu_count"], view["gpu_status"] = [], 0, gpu
    elif isinstance(gpu, list):
        view["gpu_count"] = len(gpu)
    memory = view.get("memory")
    if isinstance(memory, Mapping) and "available_bytes" not in memory:
        memory = dict(memory)
        total = memory.pop("total_bytes", None)
        if isinstance(total, int):
            memory["capacity_bytes"] = total
        view["memory"] = memory
    return view
