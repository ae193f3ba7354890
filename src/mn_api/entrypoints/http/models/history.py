"""A job's history: events, dead letters, replays and workflow progress."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mn_api.entrypoints.http.models._base import Open, optional


class Event(Open):
    timestamp: str
    type: str
    agent_id: str = optional("Only on events an agent emitted")
    payload: dict[str, Any] = optional()


class EventPageResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "data": [
                        {
                            "timestamp": "2026-11-28T14:48:10.123Z",
                            "type": "agent_message_received",
                            "agent_id": "worker",
                            "payload": {
                                "from": "router",
                                "to": "worker",
                                "type": "task",
                                "message": {"text": "hello"},
                            },
                        }
                    ],
                    "offset": 4,
                    "next_offset": 5,
                }
            ]
        }
    )

    data: list[Event]
    offset: int
    next_offset: int | None


class DeadLetter(BaseModel):
    index: int
    event_index: int
    agent_id: str
    reason: str = optional("Why the message was lost, when the core says")
    timestamp: str
    message: Any


class DeadLetterList(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "job_id": "review-pipeline-1764341290123-3f9a0c1d2e4b",
                    "data": [
                        {
                            "index": 0,
                            "event_index": 5,
                            "agent_id": "worker",
                            "reason": "simulated_drop",
                            "timestamp": "2026-11-28T14:48:10.123Z",
                            "message": {
                                "envelope": {"from": "router", "to": "worker", "type": "task"},
                                "body": {"text": "hello"},
                            },
                        }
                    ],
                }
            ]
        }
    )

    job_id: str
    data: list[DeadLetter]


class ReplayResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "job_id": "review-pipeline-1764341290123-3f9a0c1d2e4b",
                    "index": 0,
                    "event_index": 5,
                    "agent_id": "worker",
                    "status": "replayed",
                }
            ]
        }
    )

    job_id: str
    index: int
    event_index: int
    agent_id: str
    status: Literal["replayed"] = "replayed"


class AgentCounts(BaseModel):
    done: int
    running: int
    idle: int
    ready: int
    failed: int
    total: int


class WorkflowStep(Open):
    """One agent of the manifest (or seen in the history) as a step of the workflow."""

    id: str
    label: str
    status: str = Field(
        description="done, running, ready, idle, paused, failed or cancelled",
        examples=["running"],
    )
    layer: int = Field(description="Distance from an entrypoint along the declared edges")
    parents: list[str]
    children: list[str]
    agents: list[dict[str, Any]]


class WorkflowProgressView(Open):
    """A job's progress, built from its whole history and its declared topology."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "version": 1,
                    "job_id": "pipeline-1764341290123-3f9a0c1d2e4b",
                    "workflow_id": "pipeline",
                    "status": "running",
                    "sequence": 6,
                    "agent_count": {
                        "done": 0, "running": 2, "idle": 1, "ready": 0, "failed": 0, "total": 3
                    },
                }
            ]
        },
    )  # fmt: skip

    version: int
    job_id: str
    workflow_id: str = Field(description="The manifest's graph_id")
    name: str
    status: str
    sequence: int = Field(description="Events of the history this snapshot has taken in")
    generated_at: str
    elapsed_seconds: float
    agent_count: AgentCounts
    current_step_ids: list[str]
    steps: list[WorkflowStep]
    agents: list[dict[str, Any]]
    edges: list[dict[str, str]]
    recent_events: list[dict[str, Any]] = Field(description="The last 20 events, oldest first")
    failure: dict[str, Any] = optional("Why the job failed (mn.error.v1), once it has")
