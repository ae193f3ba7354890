"""Typed request and response models of the HTTP API (they also make the OpenAPI document)."""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from mn_api.application.webhooks import WebhookRequest
from mn_api.domain.webhooks import MAX_URL_LENGTH, SUBSCRIBABLE_EVENTS

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


class WebhookSpec(BaseModel):
    """Where to be told about this job's events."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://hooks.example.com/mirrorneuron",
                    "events": ["job_completed", "job_failed", "dead_letter"],
                }
            ]
        },
    )

    url: str = Field(
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description="An https URL on a host in MN_API_WEBHOOK_ALLOWED_HOSTS",
    )
    events: list[WebhookEvent] | None = Field(
        None,
        min_length=1,
        description="Event types to deliver; job_completed, job_failed and job_cancelled "
        "when left out",
    )

    def request(self) -> WebhookRequest:
        return WebhookRequest(self.url, tuple(self.events) if self.events is not None else None)


class SubmitJobRequest(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {"manifest": _EXAMPLE_MANIFEST, "payloads": {"inputs/prompt.txt": "Review this."}},
                {
                    "manifest": _EXAMPLE_MANIFEST,
                    "webhook": {
                        "url": "https://hooks.example.com/mirrorneuron",
                        "events": ["job_completed", "job_failed"],
                    },
                },
            ],
            "anyOf": [
                {"required": [name]}
                for name in ("manifest_json", "manifest", "bundle_id", "_bundle_path")
            ],
        },
    )

    manifest_json: str | None = Field(
        None, description="The manifest as JSON text (an object)", pattern=r"^\s*\{"
    )
    manifest: dict[str, Any] | None = Field(None, description="The manifest as a JSON object")
    payloads: dict[str, str] = Field(default_factory=dict, description="Text files by path")
    payloads_base64: dict[str, str] = Field(
        default_factory=dict, description="Binary files by path, base64-encoded"
    )
    bundle_id: str | None = Field(None, description="An uploaded bundle to run")
    legacy_bundle_path: str | None = Field(
        None, alias="_bundle_path", description="Older clients' name for bundle_id"
    )
    webhook: WebhookSpec | None = Field(
        None, description="Be called back on this job's events (signed, at least once)"
    )

    _files: dict[str, bytes] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _one_manifest(self) -> SubmitJobRequest:
        if self.manifest_json is not None and self.manifest is not None:
            raise ValueError("give either manifest_json or manifest, not both")
        if self.manifest_json is None and self.manifest is None and self.bundle is None:
            raise ValueError("give manifest_json, manifest or bundle_id")
        clash = self.payloads.keys() & self.payloads_base64.keys()
        if clash:
            raise ValueError(f"payload {sorted(clash)[0]!r} is given twice")
        self._files = {path: text.encode() for path, text in self.payloads.items()}
        for path, data in self.payloads_base64.items():
            try:
                self._files[path] = base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError) as err:
                raise ValueError(f"payloads_base64[{path!r}] is not valid base64") from err
        return self

    @property
    def bundle(self) -> str | None:
        return self.bundle_id if self.bundle_id is not None else self.legacy_bundle_path

    @property
    def files(self) -> dict[str, bytes]:
        """Every payload as bytes, text and base64 ones alike."""
        return self._files


class SubmitJobResponse(BaseModel):
    id: str = Field(examples=["review-pipeline-1764341290123-3f9a0c1d2e4b"])
    job_id: str
    status: str = Field(examples=["pending"])


class JobActionResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"status": "paused", "job_id": "review-pipeline-1764341290123-3f9a0c1d2e4b"}
            ]
        }
    )

    status: str = Field(
        examples=["paused"],
        description="The core's word: " + ", ".join(CONTROL_STATUSES) + "; others pass through",
    )
    job_id: str


class CancelAllFailure(BaseModel):
    job_id: str
    error: str = Field(description="The stable code of the refusal", examples=["runtime_error"])
    message: str


class CancelAllJobsResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "cancelled",
                    "active_count": 2,
                    "cancelled_count": 2,
                    "cancelled_job_ids": ["rf-1a2b3c4d", "rf-5e6f7a8b"],
                    "job_ids": ["rf-1a2b3c4d", "rf-5e6f7a8b"],
                    "via": "CancelJob",
                }
            ]
        },
    )

    status: Literal["no_active_jobs", "cancelled", "partially_cancelled", "failed"]
    active_count: int = Field(description="Live jobs when the call came")
    cancelled_count: int
    cancelled_job_ids: list[str] = Field(
        description="The jobs cancelled (the core's one call may not name them)"
    )
    job_ids: list[str] = Field(description="The same ids, by the 1.2.31 core's name")
    via: Literal["CancelAllJobs", "CancelJob"] = Field(
        description="The core's one call, or a cancel for each live job"
    )
    ended_job_ids: list[str] = optional("jobs that ended before their cancel came")
    failed: list[CancelAllFailure] = optional("jobs whose cancel was refused, and why")


class ClearJobsResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"cleared_count": 3}]})

    cleared_count: int


class HealthResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"status": "ok", "auth": "enabled", "api_contract": API_CONTRACT}]
        }
    )

    status: Literal["ok"] = "ok"
    auth: Literal["enabled", "disabled"]
    api_contract: Literal["mirrorneuron.rest.v1"] = Field(
        API_CONTRACT, description="The REST contract this gateway speaks"
    )


class ReadyResponse(BaseModel):
    status: Literal["ready"] = "ready"


class JobSummary(Open):
    job_id: str
    graph_id: str = optional()
    job_name: str = optional()
    status: str = Field(
        description="A job status: " + ", ".join(JOB_STATUSES) + "; others pass through"
    )
    submitted_at: str = optional()
    updated_at: str = optional()


class JobList(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "data": [
                        {
                            "job_id": "review-pipeline-1764341290123-3f9a0c1d2e4b",
                            "graph_id": "review-pipeline",
                            "job_name": "nightly review",
                            "status": "running",
                            "submitted_at": "2026-11-28T14:48:10.123Z",
                            "updated_at": "2026-11-28T14:48:11.002Z",
                        }
                    ]
                }
            ]
        }
    )

    data: list[JobSummary]


class Event(Open):
    timestamp: str
    type: str
    agent_id: str = optional("Only on events an agent emitted")
    payload: dict[str, Any] = optional()


class ManifestRef(Open):
    graph_id: str = optional()
    manifest_version: str = optional()
    manifest_path: str = optional()
    job_path: str = optional()


class JobInfo(JobSummary):
    placement_policy: Any = optional()
    recovery_policy: Any = optional()
    root_agent_ids: list[str] = optional()
    result: Any = optional("Left out until the job has one (and by cores that keep it small)")
    manifest_ref: ManifestRef = optional()


class AgentMetadata(Open):
    paused: bool = optional()
    outbound_edges: list[Any] = optional("The nodes this agent sends to")


class Agent(Open):
    agent_id: str
    agent_type: str = optional()
    type: str = optional("The template type, from the job's manifest when the gateway knows it")
    assigned_node: str = optional()
    status: str = optional()
    running: bool = optional("The core's `running?`")
    paused: bool = optional("The core's `paused?`")
    processed_messages: int = optional()
    mailbox_depth: int = optional()
    metadata: AgentMetadata = optional()


class JobDetails(Open):
    job: JobInfo
    summary: dict[str, Any] = Field(default_factory=dict)
    agents: list[Agent] = Field(default_factory=list)
    recent_events: list[Event] = Field(default_factory=list)
    sandboxes: list[Any] = Field(default_factory=list)


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


class ExecutorPool(Open):
    capacity: int = optional()
    available: int = optional()
    in_use: int = optional()
    queued: int = optional()
    active: int = optional()


class ClusterNode(Open):
    name: str
    connected_nodes: list[str] = optional("Includes the node itself")
    self_: bool = optional("The core's `self?`", alias="self")
    scheduler_hint: str = optional()
    executor_pools: dict[str, ExecutorPool] = optional()


class SystemSummary(Open):
    nodes: list[ClusterNode] = optional()
    jobs: list[JobSummary] = optional()


class RuntimeMetrics(Open):
    """The core's own metrics when it reports them, else counts from its summary."""


class BundleUploadResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "bundle_id": "bnd_5d41402abc4b2a76b9719d911017c592",
                    "bundle_path": "bnd_5d41402abc4b2a76b9719d911017c592",
                    "manifest": _EXAMPLE_MANIFEST,
                    "files": 2,
                    "bytes": 734,
                    "job_id": "review-pipeline-1764341290123-3f9a0c1d2e4b",
                    "status": "pending",
                }
            ]
        }
    )

    bundle_id: str
    bundle_path: str = Field(description="The same opaque id, for older clients")
    manifest: dict[str, Any]
    files: int
    bytes: int
    job_id: str = optional("When the upload also ran the bundle")
    status: str = optional()


class WebhookSubscriptionView(BaseModel):
    id: str = Field(examples=["whs_5d41402abc4b2a76"])
    url: str = Field(
        description="The receiver; a query string is shown as `?redacted`, and to a read-only "
        "token the path as `/redacted`"
    )
    events: list[str]
    source: Literal["job", "global"] = Field(
        description="Asked for at submission, or configured for every job"
    )
    created_at: str


class WebhookAttemptView(BaseModel):
    at: str
    duration_ms: float
    status_code: int = optional("The receiver's answer, when one came")
    error: str = optional("Why no answer came (timeout, refused...)")
    manual: bool = Field(description="Sent by a redeliver request")


class WebhookDeliveryView(BaseModel):
    id: str = Field(
        examples=["whd_9f86d081884c7d659a2feaa0"], description="Also sent as webhook-id"
    )
    subscription_id: str
    event_type: str = Field(examples=["job_completed"])
    event_index: int = Field(description="The event's position in the job's history")
    state: Literal["pending", "delivered", "failed"]
    created_at: str
    next_attempt_at: str = optional("When the next retry is due")
    attempts: list[WebhookAttemptView]


class JobWebhooksResponse(BaseModel):
    job_id: str
    subscriptions: list[WebhookSubscriptionView]
    deliveries: list[WebhookDeliveryView]


class ProblemItem(BaseModel):
    """One thing wrong with a request."""

    model_config = ConfigDict(extra="allow")

    code: str = Field(examples=["job_not_found"])
    message: str = Field(examples=["job 'nightly-1764341290123-3f9a0c1d2e4b' was not found"])


class Problem(BaseModel):
    """An error, as RFC 9457 problem details with a stable machine code."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": "urn:mn-api:problem:job_not_found",
                    "title": "Job not found",
                    "status": 404,
                    "detail": "job 'nightly-1764341290123-3f9a0c1d2e4b' was not found",
                    "error": "job_not_found",
                    "errors": [
                        {
                            "code": "job_not_found",
                            "message": "job 'nightly-1764341290123-3f9a0c1d2e4b' was not found",
                        }
                    ],
                    "request_id": "5f0c2a9e8b7d4c3e9a1b2c3d4e5f6a7b",
                }
            ]
        },
    )

    type: str = Field(examples=["urn:mn-api:problem:job_not_found"])
    title: str
    status: int
    detail: str
    error: str = Field(examples=["job_not_found"])
    errors: list[ProblemItem] = Field(
        description="What went wrong, as sentences to show, each with its stable code: one "
        "item, or one per problem of a manifest or per invalid field of a request"
    )
    request_id: str = optional()


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
