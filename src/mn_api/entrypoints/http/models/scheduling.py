"""Requests and answers of the core's schedules, triggers and trigger events (and the
manifest-with-payloads body they share with deployments)."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from mn_api.domain.payload_paths import check_payload_path
from mn_api.entrypoints.http.models._base import _EXAMPLE_MANIFEST
from mn_api.entrypoints.http.models.manifest import (
    JSON_VALUE_REF,
    NOT_BOTH_MANIFESTS,
    OTHER_MEMBERS,
    ManifestFields,
    any_member_of,
)

MAX_REASON_CHARS = 1024
MAX_NAME_CHARS = 256
EVENTS_KEPT = 1000
# A JSON object whose values are any JSON (integers within 64 bits, as all).
JSON_OBJECT = {"additionalProperties": {"$ref": JSON_VALUE_REF}}


def manifest_rules(*examples: dict[str, Any]) -> dict[str, Any]:
    """The schema of a body that carries a manifest: as text or as an object, not both."""
    return {
        "examples": list(examples),
        **OTHER_MEMBERS,
        "anyOf": any_member_of(manifest_json="string", manifest="object"),
        "not": NOT_BOTH_MANIFESTS,
    }


class ManifestBody(ManifestFields):
    """A manifest (as text or as an object) and its payload files."""

    model_config = ConfigDict(
        extra="ignore", json_schema_extra=manifest_rules({"manifest": _EXAMPLE_MANIFEST})
    )

    def _nothing_to_run(self) -> str | None:
        return None if self.has_manifest else "give manifest_json or manifest"

    def bundle(self) -> dict[str, Any]:
        """The manifest text and payloads as the core's request carries them; a payload
        path that could leave the bundle is refused (422 `unsafe_payload_path`)."""
        for path in self._files:
            check_payload_path(path)
        text = self.manifest_json
        if self.manifest is not None:
            text = orjson.dumps(self.manifest).decode()
        return {"manifest_json": text, "payloads": dict(self._files)}


class CreateScheduleRequest(ManifestBody):
    """What to run and when. `schedule` is the core's schedule object: `kind` (periodic,
    delayed, event or resource_wait), `crons` (five-field, UTC), `run_at` or `delay_ms`,
    `trigger` (`event_type`, `filters`), `missed_policy`, `window`, `prohibit_overlap`,
    `name`... (docs/LATER_SERVICES.md); the core normalises and refuses it."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra=manifest_rules(
            {
                "manifest": _EXAMPLE_MANIFEST,
                "schedule": {"kind": "periodic", "crons": ["0 2 * * *"], "name": "nightly"},
            }
        ),
    )

    schedule: dict[str, Any] = Field(
        default_factory=dict,
        json_schema_extra=JSON_OBJECT,
        description="The schedule; left empty, the manifest's own `schedule` block is used",
    )
    source: dict[str, Any] = Field(
        default_factory=dict,
        json_schema_extra=JSON_OBJECT,
        description='Who made it (kept on the record); `{"api": "create_schedule"}` when empty',
    )


class ScheduleUpdateRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", json_schema_extra=JSON_OBJECT)

    attrs: dict[str, Any] = Field(
        default_factory=dict,
        json_schema_extra=JSON_OBJECT,
        description="Schedule keys to change (normalised again)",
    )
    reason: str = Field("", max_length=MAX_REASON_CHARS)


class ScheduleActionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", json_schema_extra=JSON_OBJECT)

    reason: str = Field("", max_length=MAX_REASON_CHARS, description="Kept on a paused record")


class DispatchRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", json_schema_extra=JSON_OBJECT)

    payload: dict[str, Any] = Field(
        default_factory=dict,
        json_schema_extra=JSON_OBJECT,
        description="Handed to the job in its `schedule_dispatch` metadata",
    )
    reason: str = Field("manual", max_length=MAX_REASON_CHARS)


class EmitEventRequest(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            **JSON_OBJECT,
            "examples": [
                {
                    "event_type": "invoice.received",
                    "payload": {"customer": "acme", "amount": 42},
                    "source": "billing",
                }
            ],
        },
    )

    event_type: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    payload: dict[str, Any] = Field(default_factory=dict, json_schema_extra=JSON_OBJECT)
    source: str = Field("api", max_length=MAX_NAME_CHARS)


class ScheduleDocument(BaseModel):
    """The core's schedule record, as it wrote it: `schedule_id`, `kind`, `status`,
    `enabled`, `next_run_at`, `crons`/`run_at`/`trigger`, `dispatches` (newest first),
    `active_job_ids`, `counters`, `manifest`, `source`, times... (docs/LATER_SERVICES.md)."""

    model_config = ConfigDict(extra="allow")

    schedule_id: str
    kind: str
    status: str
    version: int = 1


class ScheduleList(BaseModel):
    model_config = ConfigDict(extra="allow")

    data: list[dict[str, Any]] = Field(description="Schedule records, by id")
    version: int = 1


class ScheduleDeleted(BaseModel):
    schedule_id: str
    status: str = Field(examples=["deleted"])
    version: int = 1


class DispatchTally(BaseModel):
    """How many schedules were looked at, and what became of each."""

    model_config = ConfigDict(extra="allow")

    checked: int
    dispatched: int
    skipped: int
    failed: int
    missed: int
    blocked: int
    version: int = 1


class TriggerEvent(BaseModel):
    model_config = ConfigDict(extra="allow")

    event_id: str
    event_type: str
    source: str
    payload: dict[str, Any]
    created_at: str


class EmittedEvent(DispatchTally):
    """The event as recorded, and the event schedules it started."""

    windows_closed: int
    event: TriggerEvent


class TriggerEventList(BaseModel):
    data: list[TriggerEvent] = Field(description="The newest first")
    version: int = 1
