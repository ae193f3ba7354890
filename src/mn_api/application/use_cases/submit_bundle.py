"""SubmitBundle: check and store an uploaded bundle archive, and optionally run it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

from mn_api.application.ports import BundleStore, JobAck, StoredBundle
from mn_api.application.use_cases.submit_job import SubmitJob, SubmitJobCommand


@dataclass(frozen=True, slots=True)
class BundleUpload:
    bundle: StoredBundle
    job: JobAck | None


class SubmitBundle:
    def __init__(self, bundles: BundleStore, submit_job: SubmitJob) -> None:
        self._bundles = bundles
        self._submit_job = submit_job

    async def __call__(self, archive: BinaryIO, *, submit: bool) -> BundleUpload:
        bundle = await self._bundles.save(archive)
        job = None
        if submit:
            job = await self._submit_job(SubmitJobCommand(bundle_id=bundle.bundle_id))
        return BundleUpload(bundle, job)
