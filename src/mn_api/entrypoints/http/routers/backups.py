"""Job backups (the core's ExportJobBackup and RestoreJobBackup, 1.2.5 and newer): a paused
job written out with its history and its bundle's files, and written back as a new paused
job. Files travel as base64. Cores without them (1.1, d26bef71) answer 501."""

from __future__ import annotations

import base64
import re
from typing import Annotated

from fastapi import APIRouter, Body, Depends
from starlette.responses import Response

from mn_api.application.use_cases.core_services import read_json
from mn_api.domain.errors import RuntimeProtocolError
from mn_api.domain.payload_paths import check_payload_path
from mn_api.entrypoints.http import deps
from mn_api.entrypoints.http.auth import authenticate
from mn_api.entrypoints.http.json_body import StrictJsonRoute
from mn_api.entrypoints.http.models import definitions as d
from mn_api.entrypoints.http.responses import json_response
from mn_api.entrypoints.http.routers import (
    API_PREFIX,
    JOB_ID_PATTERN,
    RUNTIME_ERRORS,
    JobId,
    problems,
)

JOB_V1 = "/mirrorneuron.job.v1.JobService/"
_ROUTABLE = re.compile(JOB_ID_PATTERN)

router = APIRouter(
    prefix=f"{API_PREFIX}/jobs",
    tags=["backups"],
    dependencies=[Depends(authenticate)],
    responses=problems(*RUNTIME_ERRORS),
    route_class=StrictJsonRoute,
)


@router.post(
    "/{job_id}/backup",
    response_model=d.BackupExport,
    responses=problems(404, 422),
    summary="Back a paused job up",
)
async def export_job_backup(job_id: JobId, core: deps.CoreServices) -> Response:
    """The core's backup document (`backup_json`, as it wrote it) and the job's bundle
    files (`manifest.json`, `payloads/...`) in base64. Only a paused job is backed up (409
    `invalid_transition` otherwise); 404 `job_not_found` for one the core does not know."""
    method = JOB_V1 + "ExportJobBackup"
    answer = await core.fields(method, {"job_id": job_id, "version": 1}, kind="job")
    backup_json = answer.get("backup_json", "")
    if not isinstance(read_json(backup_json, method, versioned=False), dict):
        raise RuntimeProtocolError("the runtime answered ExportJobBackup with no backup document")
    files = answer.get("bundle_files") or {}
    return json_response(
        {
            "version": 1,
            "job_id": job_id,
            "backup_json": backup_json,
            "bundle_files": {path: base64.b64encode(data).decode() for path, data in files.items()},
            "encoding": "base64",
        }
    )


@router.post(
    "/restore",
    status_code=201,
    response_model=d.RestoredJob,
    responses=problems(400, 404, 422),
    summary="Restore a job from its backup",
)
async def restore_job_backup(
    body: Annotated[d.RestoreBackupRequest, Body()], core: deps.CoreServices
) -> Response:
    """A backup (as the export answered it) becomes a new job, paused for review until it
    is resumed. A backup the core cannot read is 400 `invalid_argument` with its reason;
    a file path that would leave the bundle is 422 `unsafe_payload_path`."""
    for path in body.files:
        check_payload_path(path)
    restored = await core.call(
        JOB_V1 + "RestoreJobBackup",
        {
            "backup_json": body.backup_json,
            "bundle_files": body.files,
            "blueprint_id": body.blueprint_id,
            "run_id": body.run_id,
            "version": 1,
        },
        kind="job",
    )
    headers = None
    job_id = restored.get("job_id") if isinstance(restored, dict) else None
    if isinstance(job_id, str) and _ROUTABLE.fullmatch(job_id):
        headers = {"Location": f"{API_PREFIX}/jobs/{job_id}"}
    return json_response(restored, status_code=201, headers=headers)
