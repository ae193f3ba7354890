"""What every model of the API builds on."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict

from mn_api.domain.webhooks.records import SUBSCRIBABLE_EVENTS

_EXAMPLE_MANIFEST = {
    "manifest_version": "1",
    "graph_id": "review-pipeline",
    "job_name": "nightly review",
    "nodes": [
        {"node_id": "router", "agent_type": "router"},
        {"node_id": "worker", "agent_type": "executor"},
        {"node_id": "collect", "agent_type": "aggregator"},
    ],
    "edges": [
        {"from_node": "router", "to_node": "worker", "message_type": "task"},
        {"from_node": "worker", "to_node": "collect", "message_type": "result"},
    ],
    "entrypoints": ["router"],
    "initial_inputs": {"router": [{"text": "hello"}]},
}


API_CONTRACT = "mirrorneuron.rest.v1"


def whole_number(value: Any) -> Any:
    """A whole number written with a fraction (`5.0`) is that number, as JSON Schema's
    `integer` has it."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


WholeNumber = Annotated[int, BeforeValidator(whole_number)]
# The interface version some clients send in bodies: accepted, ignored (never a boolean).
InterfaceVersion = Annotated[
    int,
    Strict(),
    Field(ge=0, le=2**31, description="Accepted and ignored"),
    BeforeValidator(whole_number),
]


# What a core answers to pause, resume and cancel; other words pass through as they come.
CONTROL_STATUSES = (
    "paused",
    "resumed",
    "running",
    "cancelled",
    "force cancelled",
    "cancellation_pending",
    "cancelling",
)


JOB_STATUSES = ("pending", "running", "paused", "cancelling", "completed", "failed", "cancelled")


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def optional(description: str | None = None, **extra: Any) -> Any:
    """A field that may be left out of an answer but is never `null` when present."""
    return Field(None, description=description, json_schema_extra=_no_default, **extra)


class Open(BaseModel):
    """A runtime document: the fields below are known, others pass through."""

    model_config = ConfigDict(extra="allow")


WebhookEvent = Literal[tuple(sorted(SUBSCRIBABLE_EVENTS))]  # type: ignore[valid-type]
