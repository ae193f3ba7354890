"""Health, readiness, the runtime's summary and metrics, and problems."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mn_api.entrypoints.http.models._base import API_CONTRACT, Open, optional
from mn_api.entrypoints.http.models.jobs import JobSummary


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
