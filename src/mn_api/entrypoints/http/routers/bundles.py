"""Bundles: upload a zip of a manifest and its payloads, optionally running it at once."""

from typing import Annotated

from dependency_injector.wiring import Provide, inject
from fastapi import APIRouter, Depends, File, Query, UploadFile
from starlette.responses import Response

from mn_api.application.use_cases import SubmitBundle
from mn_api.container import Container
from mn_api.entrypoints.http.auth import authenticate
from mn_api.entrypoints.http.models import BundleUploadResponse
from mn_api.entrypoints.http.responses import json_response
from mn_api.entrypoints.http.routers import API_PREFIX, AUTH_ERRORS, RUNTIME_ERRORS, problems

router = APIRouter(
    prefix=f"{API_PREFIX}/bundles",
    tags=["bundles"],
    dependencies=[Depends(authenticate)],
    responses=problems(*AUTH_ERRORS, *RUNTIME_ERRORS),
)


@router.post(
    "/upload",
    status_code=201,
    response_model=BundleUploadResponse,
    responses=problems(400, 413, 422),
    summary="Upload a bundle zip",
)
@inject
async def upload_bundle(
    bundle: Annotated[UploadFile, File(description="A .zip holding manifest.json and payloads/")],
    use_case: Annotated[SubmitBundle, Depends(Provide[Container.submit_bundle])],
    submit: Annotated[bool, Query(description="Also submit the bundle as a job")] = False,
) -> Response:
    """`manifest.json` at the zip's root or inside one top-level folder; `payloads/` optional."""
    await bundle.seek(0)
    result = await use_case(bundle.file, submit=submit)
    stored = result.bundle
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
