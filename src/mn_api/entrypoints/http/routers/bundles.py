"""Bundles: upload a zip of a manifest and its payloads, optionally running it at once."""

import asyncio
import hashlib
from typing import Annotated, BinaryIO

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from pydantic import ValidationError, WithJsonSchema
from starlette.responses import Response

from mn_api.application.webhooks import WebhookRequest
from mn_api.domain.errors import BundleRejectedError, RequestValidationError
from mn_api.entrypoints.http import deps
from mn_api.entrypoints.http.auth import AuthDep, authenticate
from mn_api.entrypoints.http.idempotent import answer_once
from mn_api.entrypoints.http.models import BundleUploadResponse, WebhookSpec
from mn_api.entrypoints.http.responses import json_response
from mn_api.entrypoints.http.routers import (
    API_PREFIX,
    RUNTIME_ERRORS,
    IdempotencyKey,
    problems,
)

BUNDLE_DOC = (
    "A .zip holding manifest.json (at its root or in its one top-level folder) and, under "
    "payloads/, the job's files. The whole request is at most MN_API_REQUEST_SIZE_LIMIT_BYTES "
    "(5 MiB unless configured; 413 `request_too_large`); the archive may expand to at most "
    "MN_API_BUNDLE_MAX_BYTES (100 MiB) in at most MN_API_BUNDLE_MAX_FILES (10000) files, with "
    "no absolute, '..', backslash or symbolic-link member (400 `bundle_*`, `not_a_zip`)"
)
# The webhook part is JSON text (the archive's bytes go as they are, whatever its type).
PARTS = {"webhook": {"contentType": "application/json"}}

router = APIRouter(
    prefix=f"{API_PREFIX}/bundles",
    tags=["bundles"],
    dependencies=[Depends(authenticate)],
    responses=problems(*RUNTIME_ERRORS),
)


@router.post(
    "/upload",
    status_code=201,
    response_model=BundleUploadResponse,
    responses=problems(400, 404, 409, 412, 413, 422, 507),
    summary="Upload a bundle zip",
    openapi_extra={"requestBody": {"content": {"multipart/form-data": {"encoding": PARTS}}}},
)
async def upload_bundle(
    bundle: Annotated[UploadFile, File(description=BUNDLE_DOC)],
    caller: AuthDep,
    use_case: deps.SubmitBundle,
    idempotency: deps.Idempotency,
    telemetry: deps.Telemetry,
    submit: Annotated[bool, Query(description="Also submit the bundle as a job")] = False,
    webhook: Annotated[
        str | None,
        Form(
            description="With submit=true only: the job's webhook, as JSON, e.g. "
            '`{"url": "https://hooks.example.com/mn", "events": ["job_completed"]}`'
        ),
        WithJsonSchema(WebhookSpec.model_json_schema()),
    ] = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """`manifest.json` at the zip's root or inside one top-level folder; `payloads/` optional.
    The archive is checked and unpacked off the event loop; a refused one leaves nothing."""
    subscription = _webhook(webhook)

    async def work() -> Response:
        await bundle.seek(0)
        try:
            result = await use_case(bundle.file, submit=submit, webhook=subscription)
        except BundleRejectedError as error:
            telemetry.bundle_uploaded(error.code, 0)
            raise
        stored = result.bundle
        telemetry.bundle_uploaded("stored", stored.bytes)
        body = {
            "bundle_id": stored.bundle_id,
            "bundle_path": stored.bundle_id,
            "manifest": stored.manifest,
            "files": stored.files,
            "bytes": stored.bytes,
        }
        if result.job is not None:
            body["job_id"] = result.job.job_id
            body["status"] = result.job.status
        return json_response(body, status_code=201)

    async def fingerprint() -> str:
        digest = await asyncio.to_thread(_digest, bundle.file)
        return f"{digest}:submit={submit}:webhook={webhook}"

    return await answer_once(
        idempotency=idempotency,
        caller=caller,
        route="POST /bundles/upload",
        key=idempotency_key,
        fingerprint=fingerprint,
        work=work,
    )


def _webhook(text: str | None) -> WebhookRequest | None:
    """The `webhook` form field, checked like the `webhook` of a JSON submission."""
    if text is None:
        return None
    try:
        return WebhookSpec.model_validate_json(text).request()
    except ValidationError as err:
        fields = [
            {"loc": ["body", "webhook", *e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in err.errors()
        ]
        raise RequestValidationError("the webhook field is not valid", fields) from None


def _digest(file: BinaryIO) -> str:
    file.seek(0)
    digest = hashlib.sha256()
    while chunk := file.read(1 << 16):
        digest.update(chunk)
    file.seek(0)
    return digest.hexdigest()
