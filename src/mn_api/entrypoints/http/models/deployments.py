"""Requests and answers of the core's deployments."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mn_api.entrypoints.http.models._base import _EXAMPLE_MANIFEST, optional
from mn_api.entrypoints.http.models.scheduling import (
    JSON_OBJECT,
    MAX_NAME_CHARS,
    MAX_REASON_CHARS,
    ManifestBody,
    manifest_rules,
)

MAX_COUNT = 10_000


class UpdatePolicy(BaseModel):
    """How a later version of the key replaces the running one."""

    model_config = ConfigDict(extra="forbid")

    strategy: Literal["rolling", "canary", "blue-green", "blue_green"] = "rolling"
    canary: int = Field(0, ge=0, le=MAX_COUNT, description="Agents (or jobs) updated first")
    max_parallel: int = Field(1, ge=1, le=MAX_COUNT, description="Agents updated at once")
    auto_promote: bool = Field(False, description="Promote a canary without being asked")
    auto_revert: bool = False

    def core_policy(self) -> dict[str, Any]:
        return {"version": 1, **self.model_dump()}


class DeployRequest(ManifestBody):
    """A manifest to keep running under a key: the first deploy of a key starts it; a later
    one becomes the key's next version."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra=manifest_rules(
            {
                "manifest": _EXAMPLE_MANIFEST,
                "key": "review-service",
                "policy": {"strategy": "canary", "canary": 1},
            }
        ),
    )

    key: str = Field(
        "",
        max_length=MAX_NAME_CHARS,
        description="The deployment key; empty: the manifest's own (metadata "
        "`deployment_key`, `deployment.key`, then `job_name`, then `graph_id`)",
    )
    wait: bool = Field(False, description="Passed on to the core")
    policy: UpdatePolicy = Field(default_factory=UpdatePolicy)


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", json_schema_extra=JSON_OBJECT)

    version: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description='The version to go back to (text, as the core numbers them: "1"...); '
        "left out: the newest stable version other than the current one",
    )
    tag: str = Field("", max_length=MAX_NAME_CHARS)
    reason: str = Field("", max_length=MAX_REASON_CHARS)


class DeploymentActionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", json_schema_extra=JSON_OBJECT)

    reason: str = Field("", max_length=MAX_REASON_CHARS, description="Becomes the description")


class DeploymentDocument(BaseModel):
    """The core's deployment: `deployment_id`, `deployment_key`, `status`, `strategy`,
    `policy`, `current_job_id`, `stable_job_id`, `current_version`, `stable_version`,
    `target_version`, `health`, `events` (the last 100)... (docs/LATER_SERVICES.md)."""

    model_config = ConfigDict(extra="allow")

    deployment_id: str
    deployment_key: str
    status: str
    version: int = 1


class DeploymentDetails(DeploymentDocument):
    versions: list[dict[str, Any]] = Field(description="The key's version records, in order")


class DeploymentList(BaseModel):
    data: list[DeploymentDocument] = Field(description="Every deployment record, by id")
    version: int = 1


class DeploymentChange(BaseModel):
    """What a deploy, promotion or rollback did. `version` is the version record (the core
    sends no interface version here); `status` is left out where the core leaves it out
    (a version recorded, or no change)."""

    model_config = ConfigDict(extra="allow")

    deployment: DeploymentDocument
    version: dict[str, Any]
    job_id: str
    status: str = optional("Left out where the core leaves it out")
