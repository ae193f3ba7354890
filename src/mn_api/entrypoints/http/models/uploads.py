"""Bundle uploads and webhook views."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mn_api.entrypoints.http.models._base import _EXAMPLE_MANIFEST, optional


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
