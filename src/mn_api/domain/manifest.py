"""Manifest rules of the runtime: what a workflow graph must declare to be accepted."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mn_api.domain.errors import MAX_LISTED_PROBLEMS

AGENT_TYPES = ("router", "executor", "aggregator", "sensor", "module")
# Older names cores still accept, and the agent type each stands for.
AGENT_TYPE_ALIASES = {"relay": "router", "sandbox_worker": "executor", "collector": "aggregator"}
TEMPLATE_TYPES = ("generic", "stream", "map", "reduce", "batch")
TEMPLATE_TYPE_ALIASES = {"accumulator": "batch"}
# The template types each agent type can run; executor and module run any.
_COMPATIBLE: dict[str, frozenset[str]] = {
    "router": frozenset({"generic", "map"}),
    "aggregator": frozenset({"generic", "reduce"}),
    "sensor": frozenset({"generic"}),
}
ROOT_ROLES = ("root", "root_coordinator")
RECOVERY_MODES = ("local_restart", "cluster_recover", "manual_recover")
REQUIREMENT_NAMES = ("cpu", "memory", "gpu")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_SIZE_MB = {"": 1, "B": 1 / 1_048_576, "K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}


@dataclass(frozen=True, slots=True)
class Edge:
    from_node: str
    to_node: str
    message_type: str


@dataclass(frozen=True, slots=True)
class Node:
    node_id: str
    agent_type: str
    type: str | None = None
    role: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    # The services the agent offers once it runs (later cores register them), as declared.
    services: tuple[Any, ...] = ()

    @property
    def kind(self) -> str:
        """The agent type with aliases resolved (`relay` is a router)."""
        return AGENT_TYPE_ALIASES.get(self.agent_type, self.agent_type)


@dataclass(frozen=True, slots=True)
class Manifest:
    """A manifest that passed validation, in the shape the runtime executes."""

    manifest_version: str
    graph_id: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    entrypoints: tuple[str, ...]
    initial_inputs: Mapping[str, list[Any]]
    job_name: str
    daemon: bool
    metadata: Mapping[str, Any]
    policies: Mapping[str, Any]
    requirements: Mapping[str, float] = field(default_factory=dict)
    # The services the job itself offers once it runs, as declared.
    services: tuple[Any, ...] = ()

    def node(self, node_id: str) -> Node:
        return next(n for n in self.nodes if n.node_id == node_id)


def _is_str(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def _entrypoints(raw: Mapping[str, Any]) -> list[Any] | None:
    """The declared entrypoints (a list or one string), else the nodes whose role is root."""
    declared = raw.get("entrypoints")
    if isinstance(declared, str):
        return [declared]
    if isinstance(declared, list) and declared:
        return declared
    if declared is not None and declared != []:
        return None
    nodes = raw.get("nodes") if isinstance(raw.get("nodes"), list) else []
    roots = [
        n.get("node_id") for n in nodes if isinstance(n, Mapping) and n.get("role") in ROOT_ROLES
    ]
    return roots or None


class Problems:
    """The problems found: the first `MAX_LISTED_PROBLEMS` kept, every one counted, so that
    judging a manifest of a million bad nodes costs no more memory than a small one."""

    __slots__ = ("listed", "total")

    def __init__(self) -> None:
        self.listed: list[str] = []
        self.total = 0

    def append(self, problem: str) -> None:
        self.total += 1
        if len(self.listed) < MAX_LISTED_PROBLEMS:
            self.listed.append(problem)

    def extend(self, problems: Iterable[str]) -> None:
        for problem in problems:
            self.append(problem)

    def __bool__(self) -> bool:
        return self.total > 0


def validate_manifest(raw: Any) -> list[str]:
    """The problems with `raw` as the runtime reports them (the first ones of many); empty
    when it is acceptable."""
    return check_manifest(raw).listed


def check_manifest(raw: Any) -> Problems:
    """Every problem with `raw`, counted; the first ones kept."""
    errors = Problems()
    if not isinstance(raw, Mapping):
        errors.append("manifest must be a JSON object")
        return errors
    version = raw.get("manifest_version")
    if not isinstance(version, str | int | float) or isinstance(version, bool) or version == "":
        errors.append("manifest_version is required")
    if not _is_str(raw.get("graph_id")):
        errors.append("graph_id is required")

    # The wording and order are the core's: duplicates first, then each node's own problems.
    node_ids: set[str] = set()
    nodes = raw.get("nodes")
    if not isinstance(nodes, list) or not nodes:
        errors.append("nodes must not be empty")
        nodes = []
    for node in nodes:
        node_id = node.get("node_id") if isinstance(node, Mapping) else None
        if _is_str(node_id) and node_id in node_ids:
            errors.append(f"duplicate node_id {node_id}")
        elif _is_str(node_id):
            node_ids.add(node_id)
    for i, node in enumerate(nodes):
        where = f"nodes[{i}]"
        if not isinstance(node, Mapping):
            errors.append(f"{where} must be an object")
            continue
        node_id = node.get("node_id")
        if not _is_str(node_id):
            errors.append(f"{where}.node_id is required")
        errors.extend(_node_type_errors(node_id if _is_str(node_id) else where, node))
        if "role" in node and node["role"] is not None and not isinstance(node["role"], str):
            errors.append(f"{where}.role must be a string")
        config = node.get("config")
        if config is not None and not isinstance(config, Mapping):
            errors.append(f"{where}.config must be an object")
        elif config is not None:
            errors.extend(_simulate_errors(where, config.get("simulate")))

    edges = raw.get("edges", [])
    if not isinstance(edges, list):
        errors.append("edges must be a list")
        edges = []
    for i, edge in enumerate(edges):
        if not isinstance(edge, Mapping):
            errors.append(f"edges[{i}] must be an object")
            continue
        # The core names an edge by its edge_id, and an edge without one `unknown`.
        name = edge.get("edge_id") if _is_str(edge.get("edge_id")) else "unknown"
        if not _is_str(edge.get("message_type")):
            errors.append(f"edge {name} must define message_type")
        for end in ("from_node", "to_node"):
            ref = edge.get(end)
            if not _is_str(ref):
                errors.append(f"edge {name} must define {end}")
            elif nodes and ref not in node_ids:
                errors.append(f"edge {name} references missing {end} {ref}")

    entrypoints = _entrypoints(raw)
    if entrypoints is None:
        errors.append(
            "manifest must define at least one entrypoint or one node with role "
            "root/root_coordinator"
        )
    else:
        for ref in entrypoints:
            if not _is_str(ref) or (nodes and ref not in node_ids):
                errors.append(f"entrypoint {ref} does not reference a known node")

    inputs = raw.get("initial_inputs")
    if inputs is not None and not isinstance(inputs, Mapping | list):
        errors.append("initial_inputs must be an object of node id to messages, or a list")
    elif isinstance(inputs, Mapping):
        for ref in inputs:
            if nodes and ref not in node_ids:
                errors.append(f"initial_inputs {ref!r} is not a known node")

    if "job_name" in raw and raw["job_name"] is not None and not isinstance(raw["job_name"], str):
        errors.append("job_name must be a string")
    if "daemon" in raw and not isinstance(raw["daemon"], bool):
        errors.append("daemon must be a boolean")
    for key in ("metadata", "policies"):
        if key in raw and raw[key] is not None and not isinstance(raw[key], Mapping):
            errors.append(f"{key} must be an object")
    policies = raw.get("policies")
    if (
        isinstance(policies, Mapping)
        and "recovery_mode" in policies
        and policies["recovery_mode"] not in RECOVERY_MODES
    ):
        errors.append(f"policies.recovery_mode must be one of {', '.join(RECOVERY_MODES)}")
    errors.extend(_requirement_errors(raw.get("requirements")))
    return errors


def _node_type_errors(where: str, node: Mapping[str, Any]) -> list[str]:
    """The node's agent and template types, in the core's words (`where` is its node id)."""
    agent_type = node.get("agent_type")
    kind = AGENT_TYPE_ALIASES.get(agent_type, agent_type) if isinstance(agent_type, str) else None
    if kind not in AGENT_TYPES:
        return [f"unsupported agent_type {_quoted(agent_type)} for node {where}"]
    template = node.get("type")
    if template is None:
        return []
    if not isinstance(template, str):
        return [f"{where}.type must be a string"]
    template = TEMPLATE_TYPE_ALIASES.get(template, template)
    if template not in TEMPLATE_TYPES:
        names = (*TEMPLATE_TYPES, *TEMPLATE_TYPE_ALIASES)
        return [f"{where}.type must be one of {', '.join(names)}"]
    allowed = _COMPATIBLE.get(kind)
    if allowed is not None and template not in allowed:
        return [
            f"template type {_quoted(node.get('type'))} is not supported for agent_type "
            f"{_quoted(agent_type)} on node {where}"
        ]
    return []


def _quoted(value: Any) -> str:
    """A value as the core's messages show it: strings in double quotes, others as JSON."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return "nil" if value is None else repr(value)


def _simulate_errors(where: str, simulate: Any) -> list[str]:
    if simulate is None:
        return []
    if not isinstance(simulate, Mapping):
        return [f"{where}.config.simulate must be an object"]
    errors = []
    if "fail" in simulate and not isinstance(simulate["fail"], bool):
        errors.append(f"{where}.config.simulate.fail must be a boolean")
    for key in ("drop_first", "delay_ms"):
        value = simulate.get(key)
        # A whole number written with a fraction (0.0) is one, as JSON Schema counts it.
        whole = isinstance(value, int | float) and float(value).is_integer()
        if value is not None and (not whole or isinstance(value, bool) or value < 0):
            errors.append(f"{where}.config.simulate.{key} must be a non-negative integer")
    return errors


def requirement_amount(name: str, value: Any) -> float | None:
    """A requirement as a number (memory in MB): a number, a size string or `{"min": n}`."""
    if isinstance(value, Mapping):
        value = value.get("min", value.get("count"))
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value >= 0 else None
    if isinstance(value, str) and name == "memory":
        match = _SIZE.match(value)
        if match:
            unit = (match.group(2) or "").upper()[:1]
            return float(match.group(1)) * _SIZE_MB[unit]
    return None


def _requirement_errors(requirements: Any) -> list[str]:
    if requirements is None:
        return []
    if not isinstance(requirements, Mapping):
        return ["requirements must be an object"]
    return [
        f"requirements.{name} must be a non-negative number, size string, or object with a min"
        for name in REQUIREMENT_NAMES
        if name in requirements and requirement_amount(name, requirements[name]) is None
    ]


def _initial_inputs(raw: Any, entrypoints: tuple[str, ...]) -> dict[str, list[Any]]:
    """Node id to its messages: a list goes to every entrypoint, a lone message is a list."""
    if isinstance(raw, list):
        return {entry: list(raw) for entry in entrypoints}
    if not isinstance(raw, Mapping):
        return {}
    return {k: (list(v) if isinstance(v, list) else [v]) for k, v in raw.items()}


def declared_services(value: Any) -> tuple[Any, ...]:
    """A `services` declaration as a list of entries: one object or name alone is a list
    of one, as later cores read it; anything else declares none."""
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, Mapping | str):
        return (value,)
    return ()


def parse_manifest(raw: Mapping[str, Any]) -> Manifest:
    """Build a Manifest from data that `validate_manifest` accepted."""
    nodes = tuple(
        Node(
            node_id=n["node_id"],
            agent_type=n["agent_type"],
            type=n.get("type"),
            role=n.get("role"),
            config=n.get("config") or {},
            services=declared_services(n.get("services")),
        )
        for n in raw["nodes"]
    )
    edges = tuple(
        Edge(e["from_node"], e["to_node"], e["message_type"]) for e in raw.get("edges", [])
    )
    entrypoints = tuple(_entrypoints(raw) or ())
    requirements = raw.get("requirements") if isinstance(raw.get("requirements"), Mapping) else {}
    return Manifest(
        manifest_version=str(raw["manifest_version"]),
        graph_id=raw["graph_id"],
        nodes=nodes,
        edges=edges,
        entrypoints=entrypoints,
        initial_inputs=_initial_inputs(raw.get("initial_inputs"), entrypoints),
        job_name=raw.get("job_name") or raw["graph_id"],
        daemon=bool(raw.get("daemon", False)),
        metadata=dict(raw.get("metadata") or {}),
        policies=dict(raw.get("policies") or {}),
        requirements={
            name: amount
            for name in REQUIREMENT_NAMES
            if name in requirements
            and (amount := requirement_amount(name, requirements[name])) is not None
        },
        services=declared_services(raw.get("services")),
    )
