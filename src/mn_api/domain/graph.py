"""The agent graph of a job, built in one pass from its details, topology and events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mn_api.domain.events import AGENT_MESSAGE_RECEIVED

MANIFEST = "manifest"
EVENTS = "events"
BOTH = "manifest+events"
AGENT_METADATA = "agent_metadata"
ANY_MESSAGE = "*"
# What a node shows when no source says: known only from the manifest, or only from events.
UNKNOWN = "unknown"
DECLARED = "declared"
OBSERVED = "observed"
DEFAULT_TEMPLATE = "generic"
# Senders that are the core itself, not agents: generation A cores start each entrypoint with
# an `init` message from `runtime`, and messages sent into a job from outside come from
# `external`. Unless a manifest declares a node by that name, such a message is counted on
# the node it reached as a start message, not drawn as an edge from a node.
CORE_SENDERS = frozenset({"runtime", "external"})


def topology_of(manifest: Any) -> dict[str, Any]:
    """The declared part of a manifest the graph needs: nodes, edges and entrypoints."""
    manifest = _mapping(manifest)
    nodes = [
        {
            k: node[k]
            for k in ("node_id", "agent_type", "type", "role")
            if isinstance(node.get(k), str)
        }
        for node in manifest.get("nodes") or ()
        if isinstance(node, Mapping)
    ]
    edges = [
        {
            k: edge[k]
            for k in ("from_node", "to_node", "message_type")
            if isinstance(edge.get(k), str)
        }
        for edge in manifest.get("edges") or ()
        if isinstance(edge, Mapping)
    ]
    entrypoints = manifest.get("entrypoints")
    if isinstance(entrypoints, str):
        entrypoints = [entrypoints]
    return {
        "nodes": nodes,
        "edges": edges,
        "entrypoints": [e for e in entrypoints or () if isinstance(e, str)],
    }


def _mapping(value: Any) -> Mapping[str, Any]:
    # The dict check first: it is what parsed JSON gives, and far cheaper than the ABC's.
    return value if isinstance(value, (dict, Mapping)) else {}


def _name(value: Any) -> str | None:
    return value if value and isinstance(value, str) else None


class EventFold:
    """What a history's events say about the graph, folded one event at a time: the agents
    they name, the messages each edge carried, and the messages the core itself sent.

    Kept beside a job's journal and extended with each new event, so that a graph answer
    costs O(agents + edges), not O(events). Fed in the history's order (the hot loop of a
    graph over a long history: the common case is kept short).
    """

    __slots__ = ("agents", "edges", "events", "messages")

    def __init__(self) -> None:
        self.agents: dict[str, None] = {}
        self.edges: dict[tuple[str, str, str], list[Any]] = {}
        self.messages = 0
        self.events = 0

    def add(self, event: Mapping[str, Any]) -> None:
        self.events += 1
        agent_id = _name(event.get("agent_id"))
        if agent_id is not None and agent_id not in self.agents:
            self.agents[agent_id] = None
        if event.get("type") != AGENT_MESSAGE_RECEIVED:
            return
        self.messages += 1
        payload = _mapping(event.get("payload"))
        source = _name(payload.get("from"))
        target = _name(payload.get("to"))
        message_type = _name(payload.get("type"))
        if source is None or target is None or message_type is None:
            envelope = _mapping(_mapping(payload.get("message")).get("envelope"))
            source = source or _name(envelope.get("from"))
            target = target or _name(envelope.get("to")) or agent_id
            message_type = message_type or _name(envelope.get("type")) or ANY_MESSAGE
        if source is None or target is None:
            return
        key = (source, target, message_type)
        counted = self.edges.get(key)
        timestamp = event.get("timestamp")
        stamp = timestamp if isinstance(timestamp, str) else ""
        if counted is None:
            self.edges[key] = [1, stamp]
        else:
            counted[0] += 1
            if stamp > counted[1]:
                counted[1] = stamp


class GraphBuilder:
    """Accumulates nodes and edges; events are fed one at a time so memory stays flat."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.graph_id: str = UNKNOWN
        self.status: str = UNKNOWN
        self._nodes: dict[str, dict[str, Any]] = {}
        self._edges: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._outbound: set[tuple[str, str]] = set()
        self._messages = 0
        self._events = 0
        self._pending = EventFold()

    def _node(self, node_id: str, status: str = OBSERVED) -> dict[str, Any]:
        node = self._nodes.get(node_id)
        if node is None:
            node = {
                "id": node_id,
                "label": node_id,
                "agent_type": UNKNOWN,
                "type": UNKNOWN,
                "status": status,
                "assigned_node": UNKNOWN,
                "processed_messages": 0,
                "mailbox_depth": 0,
            }
            self._nodes[node_id] = node
        return node

    def _edge(self, source: str, target: str, message_type: str) -> dict[str, Any]:
        key = (source, target, message_type)
        edge = self._edges.get(key)
        if edge is None:
            edge = {
                "id": f"{source}->{target}:{message_type}",
                "source": source,
                "target": target,
                "message_type": message_type,
                "count": 0,
                "source_event": None,
            }
            self._edges[key] = edge
            self._node(source)
            self._node(target)
        return edge

    @staticmethod
    def _mark(edge: dict[str, Any], origin: str) -> None:
        current = edge["source_event"]
        if current is None or current == origin:
            edge["source_event"] = origin
        elif {current, origin} == {MANIFEST, EVENTS} or current == BOTH:
            edge["source_event"] = BOTH

    def add_job(self, details: Mapping[str, Any]) -> None:
        """Take the job's own facts and its agents from the runtime's job details."""
        job = _mapping(details.get("job"))
        self.graph_id = _name(job.get("graph_id")) or self.graph_id
        self.status = _name(job.get("status")) or self.status
        for agent in details.get("agents") or ():
            agent = _mapping(agent)
            agent_id = _name(agent.get("agent_id"))
            if agent_id is None:
                continue
            node = self._node(agent_id)
            if node["type"] == UNKNOWN:
                node["type"] = DEFAULT_TEMPLATE
            for key in ("agent_type", "type", "status", "assigned_node"):
                if isinstance(agent.get(key), str) and agent[key]:
                    node[key] = agent[key]
            for key in ("processed_messages", "mailbox_depth"):
                if isinstance(agent.get(key), int):
                    node[key] = agent[key]
            for target in _mapping(agent.get("metadata")).get("outbound_edges") or ():
                if isinstance(target, Mapping):
                    target = target.get("to") or target.get("target") or target.get("to_node")
                if _name(target):
                    self._outbound.add((agent_id, target))

    def add_topology(self, topology: Mapping[str, Any]) -> None:
        """Take the declared nodes and edges of the manifest."""
        for node in topology.get("nodes") or ():
            node = _mapping(node)
            node_id = _name(node.get("node_id"))
            if node_id is None:
                continue
            entry = self._node(node_id, DECLARED)
            if entry["status"] == OBSERVED:
                entry["status"] = DECLARED
            if entry["agent_type"] == UNKNOWN and _name(node.get("agent_type")):
                entry["agent_type"] = node["agent_type"]
            if entry["type"] in (UNKNOWN, DEFAULT_TEMPLATE):
                entry["type"] = _name(node.get("type")) or DEFAULT_TEMPLATE
        for edge in topology.get("edges") or ():
            edge = _mapping(edge)
            source, target = _name(edge.get("from_node")), _name(edge.get("to_node"))
            if source and target:
                message_type = _name(edge.get("message_type")) or ANY_MESSAGE
                self._mark(self._edge(source, target, message_type), MANIFEST)

    def add_event(self, event: Mapping[str, Any]) -> None:
        """Count one event (a graph built from one pass over a history)."""
        self._pending.add(event)

    def add_events(self, fold: EventFold) -> None:
        """Take what a history's events say, folded beforehand: O(agents + edges)."""
        for agent_id in fold.agents:
            if agent_id not in self._nodes:
                self._node(agent_id)
        for (source, target, message_type), (count, last_seen) in fold.edges.items():
            if source in CORE_SENDERS and source not in self._nodes:
                # The core's own message to a node (no node of the manifest is so named).
                node = self._node(target)
                node["start_messages"] = node.get("start_messages", 0) + count
                continue
            edge = self._edges.get((source, target, message_type)) or self._edge(
                source, target, message_type
            )
            edge["count"] += count
            if last_seen and last_seen > edge.get("last_seen_at", ""):
                edge["last_seen_at"] = last_seen
            if edge["source_event"] != EVENTS:
                self._mark(edge, EVENTS)
        self._messages += fold.messages
        self._events += fold.events

    def build(self) -> dict[str, Any]:
        if self._pending.events:
            pending, self._pending = self._pending, EventFold()
            self.add_events(pending)
        linked = {(s, t) for (s, t, _m) in self._edges}
        for source, target in self._outbound - linked:
            self._mark(self._edge(source, target, ANY_MESSAGE), AGENT_METADATA)
        nodes = [self._nodes[k] for k in sorted(self._nodes)]
        edges = sorted(self._edges.values(), key=lambda e: e["id"])
        return {
            "job_id": self.job_id,
            "graph_id": self.graph_id,
            "status": self.status,
            "nodes": nodes,
            "edges": edges,
            "stats": {
                "agent_count": len(nodes),
                "edge_count": len(edges),
                "message_count": self._messages,
                "event_count": self._events,
            },
        }
