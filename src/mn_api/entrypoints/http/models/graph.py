"""A job's agent graph."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mn_api.entrypoints.http.models._base import optional


class GraphNode(BaseModel):
    id: str
    label: str
    agent_type: str = Field(description="`unknown` when no source names it")
    type: str = Field(description="the template type; `unknown` for a node only events name")
    status: str = Field(
        description="the agent's status; `declared` for a node only the manifest names, "
        "`observed` for one only events name"
    )
    assigned_node: str = Field(description="`unknown` until the runtime places the agent")
    processed_messages: int
    mailbox_depth: int
    start_messages: int = optional(
        "messages the core itself sent this node (its start messages, from `runtime`); "
        "left out when none"
    )


class GraphEdge(BaseModel):
    id: str
    source: str
    target: str
    message_type: str
    count: int
    last_seen_at: str = optional("the newest message's timestamp; left out until a message flowed")
    source_event: Literal["manifest", "events", "manifest+events", "agent_metadata"]


class GraphStats(BaseModel):
    agent_count: int
    edge_count: int
    message_count: int
    event_count: int


class AgentGraph(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "job_id": "review-pipeline-1764341290123-3f9a0c1d2e4b",
                    "graph_id": "review-pipeline",
                    "status": "completed",
                    "nodes": [
                        {
                            "id": "router",
                            "label": "router",
                            "agent_type": "router",
                            "type": "map",
                            "status": "completed",
                            "assigned_node": "mn-memory@localhost",
                            "processed_messages": 1,
                            "mailbox_depth": 0,
                        },
                        {
                            "id": "worker",
                            "label": "worker",
                            "agent_type": "executor",
                            "type": "llm",
                            "status": "completed",
                            "assigned_node": "mn-memory@localhost",
                            "processed_messages": 1,
                            "mailbox_depth": 0,
                        },
                    ],
                    "edges": [
                        {
                            "id": "router->worker:task",
                            "source": "router",
                            "target": "worker",
                            "message_type": "task",
                            "count": 1,
                            "last_seen_at": "2026-11-28T14:48:10.223Z",
                            "source_event": "manifest+events",
                        }
                    ],
                    "stats": {
                        "agent_count": 2,
                        "edge_count": 1,
                        "message_count": 2,
                        "event_count": 7,
                    },
                }
            ]
        }
    )

    job_id: str
    graph_id: str
    status: str
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    stats: GraphStats
