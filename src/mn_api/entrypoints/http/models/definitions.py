"""Job definitions and runs (the core's JobService v2), and job backups: what the routes
take and what they answer (the core's documents, whose other members pass through)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from mn_api.application.use_cases import DefinitionSource
from mn_api.entrypoints.http.models._base import _EXAMPLE_MANIFEST, Open, optional
from mn_api.entrypoints.http.models.manifest import (
    BASE64_SCHEMA,
    JSON_VALUE_REF,
    NOT_BOTH_MANIFESTS,
    OTHER_MEMBERS,
    PAYLOAD_PATH_SCHEMA,
    ManifestFields,
    any_member_of,
    decoded_base64,
)

# The ids the core gives definitions and runs (and takes from a client).
IDENTIFIER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_ANY_OBJECT = {"type": "object", "additionalProperties": {"$ref": JSON_VALUE_REF}}
# A folder name of the job's data, as the core takes it.
_DATA_SEGMENT = r"[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}"
_DATA_PATH = {"type": "string", "pattern": rf"^{_DATA_SEGMENT}(?:/{_DATA_SEGMENT})*$"}
STORAGE_SCHEMA: dict[str, Any] = {
    **_ANY_OBJECT,
    "properties": {
        "resources": {
            "type": "array",
            "items": {
                **_ANY_OBJECT,
                "required": ["name"],
                "properties": {
                    "name": _DATA_PATH,
                    "path": _DATA_PATH,
                    "access": {"enum": ["read", "read_only", "ro", "read_write", "write", "rw"]},
                },
            },
        }
    },
}


class DefinitionManifest(ManifestFields):
    """A manifest (as text or object, not both) and its payloads (which go only with a
    manifest: without one they are not sent)."""

    model_config = ConfigDict(
        extra="ignore", json_schema_extra={"not": NOT_BOTH_MANIFESTS, **OTHER_MEMBERS}
    )

    def source(self, dumps: Any) -> DefinitionSource | None:
        """The manifest and payloads as the use case takes them (none without a
        manifest); `dumps` writes an object as JSON text."""
        if self.manifest is not None:
            return DefinitionSource(dumps(self.manifest), self._files)
        if self.manifest_json is not None:
            return DefinitionSource(self.manifest_json, self._files)
        return None


class CreateDefinitionRequest(DefinitionManifest):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "manifest": _EXAMPLE_MANIFEST,
                    "job_id": "nightly-review",
                    "resolved_configuration": {"llm": {"temperature": 0}},
                }
            ],
            "anyOf": any_member_of(manifest_json="string", manifest="object"),
            "not": NOT_BOTH_MANIFESTS,
            **OTHER_MEMBERS,
        },
    )

    job_id: str | None = Field(
        None,
        pattern=IDENTIFIER_PATTERN,
        description="The definition's id; the core makes one (`job_...`) when left out",
    )
    resolved_configuration: dict[str, Any] = Field(
        default_factory=dict,
        description="Merged into every run's inputs",
        json_schema_extra=_ANY_OBJECT,
    )
    storage: dict[str, Any] = Field(
        default_factory=dict,
        description="Data the runs share, merged over the manifest's `metadata.job_data`: "
        "`resources`, each a `name` and optionally a `path` (relative), an `access` and a "
        "`seed` (`@/` and a folder of the bundle to fill it from)",
        json_schema_extra=STORAGE_SCHEMA,
    )

    @model_validator(mode="after")
    def _needs_manifest(self) -> CreateDefinitionRequest:
        if not self.has_manifest:
            raise ValueError("give manifest_json or manifest")
        return self


class UpdateDefinitionRequest(DefinitionManifest):
    """New attributes, and optionally a new manifest of the same graph and blueprint (the
    definition active, none of its runs live)."""

    attrs: dict[str, Any] = Field(
        default_factory=dict,
        description="`resolved_configuration`, `schedules`, `storage` and `job_name` are "
        "applied; the core ignores others (the status among them)",
        json_schema_extra=_ANY_OBJECT,
    )


class StartRunRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", json_schema_extra=OTHER_MEMBERS)

    run_id: str | None = Field(
        None, pattern=IDENTIFIER_PATTERN, description="The run's id; the core makes one"
    )
    inputs: dict[str, Any] = Field(
        default_factory=dict,
        description="Deep-merged over the manifest's initial inputs and the definition's "
        "configuration",
        json_schema_extra=_ANY_OBJECT,
    )


class JobScheduleRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", json_schema_extra=OTHER_MEMBERS)

    schedule: dict[str, Any] = Field(
        default_factory=dict,
        description="The schedule as the core reads it (`kind`, `crons`, `run_at`, "
        "`delay_ms`, `trigger`...)",
        json_schema_extra=_ANY_OBJECT,
    )
    source: dict[str, Any] = Field(
        default_factory=dict,
        description="Who asked, as the schedule records it",
        json_schema_extra=_ANY_OBJECT,
    )


class ConfirmDeleteRequest(BaseModel):
    model_config = ConfigDict(
        extra="ignore", json_schema_extra={"examples": [{"confirmed": True}], **OTHER_MEMBERS}
    )

    confirmed: Literal[True] = Field(description="Says the deletion is meant")


class RestoreBackupRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", json_schema_extra=OTHER_MEMBERS)

    backup_json: str = Field(
        min_length=1,
        pattern=r"^\s*\{",
        description="The backup document, as the export answered it (JSON text)",
        json_schema_extra={"contentMediaType": "application/json"},
    )
    bundle_files: dict[str, str] = Field(
        default_factory=dict,
        description="The bundle's files by path (`manifest.json`, `payloads/...`), base64",
        json_schema_extra={
            "propertyNames": PAYLOAD_PATH_SCHEMA,
            "additionalProperties": BASE64_SCHEMA,
        },
    )
    blueprint_id: str = Field("", max_length=256, description="The blueprint to restore as")
    run_id: str = Field("", max_length=256, description="The restored job's run id")

    _files: dict[str, bytes] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _decode(self) -> RestoreBackupRequest:
        self._files = decoded_base64(self.bundle_files, "bundle_files")
        return self

    @property
    def files(self) -> dict[str, bytes]:
        return self._files


class _Versioned(Open):
    version: int = Field(2, description="The core's interface version (2)")


class BundleRef(Open):
    bundle_fingerprint: str | None = optional()
    bundle_bytes: int | None = optional()
    graph_id: str | None = optional()
    manifest_version: str | None = optional()


class DefinitionSummary(_Versioned):
    """A job definition as the core summarises it (its other members pass through)."""

    job_id: str = Field(examples=["nightly-review"])
    blueprint_id: str | None = optional()
    graph_id: str | None = optional()
    job_name: str | None = optional()
    owner_node: str | None = optional()
    status: str = Field(examples=["active"], description="`active` or `archived`")
    data_generation: int | None = optional()
    latest_run_id: str | None = optional()
    created_at: str | None = optional()
    updated_at: str | None = optional()
    bundle_ref: BundleRef | None = optional()
    run_count: int | None = optional()
    schedule_count: int | None = optional()
    retired_definition_resources: dict[str, Any] | None = optional(
        "What the replaced manifest leaves for the host to clean up (after a new manifest)"
    )


class DefinitionDetail(DefinitionSummary):
    resolved_configuration: dict[str, Any] | None = optional()
    schedules: list[Any] | None = optional()
    schedule_ids: list[str] | None = optional()
    storage: dict[str, Any] | None = optional()


class DefinitionList(_Versioned):
    data: list[DefinitionSummary]


class DefinitionDeleted(_Versioned):
    job_id: str
    status: Literal["deleted"]


class RunStarted(_Versioned):
    job_id: str
    run_id: str = Field(examples=["nr-1a2b3c4d"])
    status: str = Field(examples=["pending"])


class Run(_Versioned):
    """A run: a job of the core under its run id (the job routes of /api/v1 reach it)."""

    run_id: str
    job_id: str | None = optional("The definition (left out for a job that is no run)")
    status: str = Field(examples=["running"])
    graph_id: str | None = optional()
    job_name: str | None = optional()
    attempt_id: str | None = optional()
    data_generation: int | None = optional()
    job_data_access: str | None = optional()
    owner_node: str | None = optional()
    submitted_at: str | None = optional()
    started_at: str | None = optional()
    updated_at: str | None = optional()
    completed_at: str | None = optional()
    cancelled_at: str | None = optional()
    manifest_ref: BundleRef | None = optional()


class RunList(_Versioned):
    job_id: str
    data: list[Run]


class RunAction(_Versioned):
    run_id: str
    status: str = Field(examples=["paused"], description="The core's word")


class RunDeleted(_Versioned):
    run_id: str
    status: Literal["deleted"]


class JobSchedule(_Versioned):
    """The schedule the core made for the definition (its manifest and dispatches left
    out, counted instead)."""

    schedule_id: str = Field(examples=["sched_Ab3dE5gH7jK"])
    job_id: str | None = optional()
    dispatch_count: int | None = optional()
    active_run_count: int | None = optional()


class BackupExport(BaseModel):
    version: int = 1
    job_id: str
    backup_json: str = Field(
        description="The core's backup document, as it wrote it (JSON text): give it back "
        "as it is to restore",
        json_schema_extra={"contentMediaType": "application/json"},
    )
    bundle_files: dict[str, str] = Field(
        description="The bundle's files by path (`manifest.json`, `payloads/...`)",
        json_schema_extra={"additionalProperties": BASE64_SCHEMA},
    )
    encoding: Literal["base64"] = "base64"


class RestoredJob(Open):
    """The job the backup became: paused until it is resumed (POST /api/v1/jobs/{job_id}
    /resume)."""

    version: int = 1
    job_id: str
    run_id: str | None = optional()
    blueprint_id: str | None = optional()
    status: str = Field(examples=["paused"])
    source_job_id: str | None = optional()
    source_run_id: str | None = optional()
    restore_provenance: dict[str, Any] | None = optional()
    recovery: dict[str, Any] | None = optional()
