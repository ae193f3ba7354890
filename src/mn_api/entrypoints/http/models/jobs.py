"""Submitting, listing, controlling and describing jobs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mn_api.application.webhooks import WebhookRequest
from mn_api.domain.webhooks.url_policy import MAX_URL_LENGTH
from mn_api.entrypoints.http.models._base import (
    _EXAMPLE_MANIFEST,
    CONTROL_STATUSES,
    JOB_STATUSES,
    Open,
    WebhookEvent,
    optional,
)
from mn_api.entrypoints.http.models.history import Event
from mn_api.entrypoints.http.models.manifest import (
    BUNDLE_ID_PATTERN,
    NOT_BOTH_MANIFESTS,
    OTHER_MEMBERS,
    ManifestFields,
    any_member_of,
)

# What the URL policy reads before anything else: printable ASCII without spaces or
# backslashes, http(s) (the host, its addresses and the scheme it may use are the policy's).
WEBHOOK_URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[!-\[\]-~]+$"


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
        description="An https URL on a host in MN_API_WEBHOOK_ALLOWED_HOSTS (http only for "
        "MN_API_WEBHOOK_INSECURE_HOSTS); others are refused as `webhook_url_not_allowed`",
        json_schema_extra={"pattern": WEBHOOK_URL_PATTERN},
    )
    events: list[WebhookEvent] | None = Field(
        None,
        min_length=1,
        description="Event types to deliver; job_completed, job_failed and job_cancelled "
        "when left out",
    )

    def request(self) -> WebhookRequest:
        return WebhookRequest(self.url, tuple(self.events) if self.events is not None else None)


class SubmitJobRequest(ManifestFields):
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
            **OTHER_MEMBERS,
            # What to run: a manifest (as text or object, not both) or an uploaded bundle.
            "anyOf": any_member_of(
                manifest_json="string", manifest="object", bundle_id="string", _bundle_path="string"
            ),
            "not": NOT_BOTH_MANIFESTS,
        },
    )

    bundle_id: str | None = Field(
        None,
        description="An uploaded bundle to run (the `bundle_id` `/bundles/upload` answered)",
        json_schema_extra={"pattern": BUNDLE_ID_PATTERN},
    )
    legacy_bundle_path: str | None = Field(
        None,
        alias="_bundle_path",
        description="Older clients' name for bundle_id",
        json_schema_extra={"pattern": BUNDLE_ID_PATTERN},
    )
    webhook: WebhookSpec | None = Field(
        None, description="Be called back on this job's events (signed, at least once)"
    )

    def _nothing_to_run(self) -> str | None:
        if self.has_manifest or self.bundle is not None:
            return None
        return "give manifest_json, manifest or bundle_id"

    @property
    def bundle(self) -> str | None:
        return self.bundle_id if self.bundle_id is not None else self.legacy_bundle_path


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
    failed: list[CancelAllFailure] = optional(
        "jobs whose cancel was refused, or not answered by the time limit, and why"
    )
    stopped: Literal["time_limit", "listing_limit"] = optional(
        "Why the call stopped before every live job was tried: its time limit (20 s), or a "
        "listing of live jobs (1,000 at most) that named only jobs already tried"
    )
    remaining_count: int = optional(
        "With `stopped`: the live jobs seen that the call did not get to"
    )
    message: str = optional("With `stopped`: what to do about it")


class ClearJobsResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"cleared_count": 3}]})

    cleared_count: int


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
