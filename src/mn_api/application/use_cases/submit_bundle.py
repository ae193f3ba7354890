"""SubmitBundle: check and store an uploaded bundle archive, and optionally run it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

from mn_api.application.ports import BundleStore, JobAck, StoredBundle
from mn_api.application.use_cases.submit_job import SubmitJob, SubmitJobCommand
from mn_api.application.webhooks import WebhookRequest
from mn_api.domain.errors import RequestValidationError


@dataclass(frozen=True, slots=True)
class BundleUpload:
    bundle: StoredBundle
    job: JobAck | None


class SubmitBundle:
    def __init__(self, bundles: BundleStore, submit_job: SubmitJob) -> None:
        self._bundles = bundles
        self._submit_job = submit_job

    async def __call__(
        self, archive: BinaryIO, *, submit: bool, webhook: WebhookRequest | None = None
    ) -> BundleUpload:
        if webhook is not None and not submit:
            raise RequestValidationError(
                "a webhook needs submit=true: it belongs to the job, not the bundle",
                [{"loc": ["body", "webhook"], "msg": "only allowed with submit=true"}],
            )
        bundle = await self._bundles.save(archive)
        job = None
        if submit:
            job = await self._submit_job(
                SubmitJobCommand(bundle_id=bundle.bundle_id, webhook=webhook)
            )
        return BundleUpload(bundle, job)
