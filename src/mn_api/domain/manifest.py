"""Manifest rules of the runtime: what a workflow graph must declare to be accepted."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

AGENT_TYPES = ("router", "executor", "aggregator", "sensor", "module")
_GRAPH_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


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


@dataclass(frozen=True, slots=True)
class Manifest:
    """A manifest that passed validation, in the shape the runtime executes."""

    manifest_version: str
    graph_id: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    entrypoints: tuple[str, ...]
    initial_inputs: Mapping[str, list[Any]]
    job_name: str | None
    daemon: bool
    metadata: Mapping[str, Any]
    policies: Mapping[str, Any]

    def node(self, node_id: str) -> Node:
        return next(n for n in self.nodes if n.node_id == node_id)


def _is_str(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def validate_manifest(raw: Any) -> list[str]:
    """Every problem with `raw` as the runtime reports them; empty when it is acceptable."""
    if not isinstance(raw, Mapping):
        return ["manifest must be a JSON object"]
    errors: list[str] = []
    version = raw.get("manifest_version")
    if not isinstance(version, str | int | float) or isinstance(version, bool) or version == "":
        errors.append("manifest_version is required")
    graph_id = raw.get("graph_id")
    if not _is_str(graph_id):
        errors.append("graph_id is required")
    elif not _GRAPH_ID.match(graph_id):
        errors.append(
            "graph_id must start with a letter or digit and hold only letters, digits, "
            "'.', '_' or '-' (at most 128)"
        )

    node_ids: set[str] = set()
    nodes = raw.get("nodes")
    if not isinstance(nodes, list) or not nodes:
        errors.append("nodes must be a non-empty list")
        nodes = []
    for i, node in enumerate(nodes):
        where = f"nodes[{i}]"
        if not isinstance(node, Mapping):
            errors.append(f"{where} must be an object")
            continue
        node_id = node.get("node_id")
        if not _is_str(node_id):
            errors.append(f"{where}.node_id is required")
        elif node_id in node_ids:
            errors.append(f"{where}.node_id {node_id!r} is duplicated")
        else:
            node_ids.add(node_id)
        agent_type = node.get("agent_type")
        if agent_type not in AGENT_TYPES:
            errors.append(f"{where}.agent_type must be one of {', '.join(AGENT_TYPES)}")
        for key in ("type", "role"):
            if key in node and node[key] is not None and not isinstance(node[key], str):
                errors.append(f"{where}.{key} must be a string")
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
        where = f"edges[{i}]"
        if not isinstance(edge, Mapping):
            errors.append(f"{where} must be an object")
            continue
        for end in ("from_node", "to_node"):
            ref = edge.get(end)
            if not _is_str(ref):
                errors.append(f"{where}.{end} is required")
            elif nodes and ref not in node_ids:
                errors.append(f"{where}.{end} {ref!r} is not a known node")
        if not _is_str(edge.get("message_type")):
            errors.append(f"{where}.message_type is required")

    entrypoints = raw.get("entrypoints")
    if not isinstance(entrypoints, list) or not entrypoints:
        errors.append("entrypoints must be a non-empty list of node ids")
    else:
        for i, ref in enumerate(entrypoints):
            if not _is_str(ref) or (nodes and ref not in node_ids):
                errors.append(f"entrypoints[{i}] {ref!r} is not a known node")

    inputs = raw.get("initial_inputs")
    if inputs is not None:
        if not isinstance(inputs, Mapping):
            errors.append("initial_inputs must be an object of node id to a list of messages")
        else:
            for ref, messages in inputs.items():
                if nodes and ref not in node_ids:
                    errors.append(f"initial_inputs {ref!r} is not a known node")
                if not isinstance(messages, list):
                    errors.append(f"initial_inputs[{ref!r}] must be a list")

    if "job_name" in raw and raw["job_name"] is not None and not isinstance(raw["job_name"], str):
        errors.append("job_name must be a string")
    if "daemon" in raw and not isinstance(raw["daemon"], bool):
        errors.append("daemon must be a boolean")
    for key in ("metadata", "policies"):
        if key in raw and raw[key] is not None and not isinstance(raw[key], Mapping):
            errors.append(f"{key} must be an object")
    return errors


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
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 0
        ):
            errors.append(f"{where}.config.simulate.{key} must be a non-negative integer")
    return errors


def parse_manifest(raw: Mapping[str, Any]) -> Manifest:
    """Build a Manifest from data that `validate_manifest` accepted."""
    nodes = tuple(
        Node(
            node_id=n["node_id"],
            agent_type=n["agent_type"],
            type=n.get("type"),
            role=n.get("role"),
            config=n.get("config") or {},
        )
        for n in raw["nodes"]
    )
    edges = tuple(
        Edge(e["from_node"], e["to_node"], e["message_type"]) for e in raw.get("edges", [])
    )
    return Manifest(
        manifest_version=str(raw["manifest_version"]),
        graph_id=raw["graph_id"],
        nodes=nodes,
        edges=edges,
        entrypoints=tuple(raw["entrypoints"]),
        initial_inputs=dict(raw.get("initial_inputs") or {}),
        job_name=raw.get("job_name"),
        daemon=bool(raw.get("daemon", False)),
        metadata=dict(raw.get("metadata") or {}),
        policies=dict(raw.get("policies") or {}),
    )
