"""SubmitJob: hand a manifest and its payloads (or a stored bundle) to the runtime."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field

from mn_api.application.ports import BundleStore, JobAck, RuntimePort, TopologyStore
from mn_api.application.webhooks import PlannedSubscription, WebhookRequest, Webhooks
from mn_api.domain.errors import (
    DomainError,
    NotSupportedError,
    RequestValidationError,
    TooLargeForRuntimeError,
)
from mn_api.domain.payload_paths import check_payload_path

log = logging.getLogger("mn_api.jobs")


@dataclass(frozen=True, slots=True)
class SubmitJobCommand:
    """What to run: manifest JSON text, or the id of an uploaded bundle, plus payloads."""

    manifest_json: str | None = None
    payloads: Mapping[str, bytes] = field(default_factory=dict)
    bundle_id: str | None = None
    webhook: WebhookRequest | None = None


class SubmitJob:
    """Without `bundles` no submission may name a bundle; without `webhooks` none may ask
    for a webhook (each is refused as not supported here, before anything is sent)."""

    def __init__(
        self,
        runtime: RuntimePort,
        topologies: TopologyStore,
        bundles: BundleStore | None = None,
        webhooks: Webhooks | None = None,
        bundle_submissions: int = 4,
    ) -> None:
        self._runtime = runtime
        self._bundles = bundles
        self._webhooks = webhooks
        self._topologies = topologies
        # A bundle is read whole to be sent: this many at once bound the memory it takes.
        self._bundle_slots = asyncio.Semaphore(bundle_submissions)

    async def __call__(self, command: SubmitJobCommand) -> JobAck:
        if command.bundle_id is None:
            return await self._submit(command, dict(command.payloads), command.manifest_json)
        if self._bundles is None:
            raise NotSupportedError("this gateway keeps no bundles: send the manifest itself")
        async with self._bundle_slots:
            bundle = await self._bundles.load(command.bundle_id)
            payloads = bundle.payloads
            payloads.update(command.payloads)  # one copy of the bundle, not two
            manifest_json = command.manifest_json or bundle.manifest_json
            del bundle
            return await self._submit(command, payloads, manifest_json)

    async def _submit(
        self, command: SubmitJobCommand, payloads: dict[str, bytes], manifest_json: str | None
    ) -> JobAck:
        if manifest_json is None:
            raise RequestValidationError(
                "give a manifest (manifest_json or manifest) or a bundle_id",
                [{"loc": ["body"], "msg": "manifest_json, manifest or bundle_id is required"}],
            )
        _require_object(manifest_json)
        for key in payloads:
            check_payload_path(key)
        self._check_size(manifest_json, payloads)
        planned = await self._planned(command.webhook)
        ack = await self._runtime.submit_job(manifest_json, payloads)
        try:
            await self._topologies.save(ack.job_id, manifest_json)
        except DomainError:
            # The job runs either way; its graph shows declared edges once traffic flows.
            log.warning("the topology of job %s could not be kept", ack.job_id)
        if planned:
            assert self._webhooks is not None  # nothing is planned without them
            try:
                await self._webhooks.subscribe(ack.job_id, ack.status, planned)
            except DomainError:
                # A job nobody would hear about is not what was asked for: take it back.
                log.warning("job %s cancelled: its webhooks could not be recorded", ack.job_id)
                with suppress(DomainError):
                    await self._runtime.cancel_job(ack.job_id)
                raise
        return ack

    async def _planned(self, request: WebhookRequest | None) -> list[PlannedSubscription]:
        if self._webhooks is not None:
            return await self._webhooks.plan(request)
        if request is not None:
            raise NotSupportedError("this gateway sends no webhooks")
        return []

    def _check_size(self, manifest_json: str, payloads: Mapping[str, bytes]) -> None:
        check_submission_size(self._runtime.message_limit_bytes, manifest_json, payloads)


def check_submission_size(
    limit: int | None, manifest_json: str, payloads: Mapping[str, bytes]
) -> None:
    """Refuse, before anything is sent, what one message to the runtime cannot carry."""
    if limit is None:
        return
    size = len(manifest_json.encode("utf-8", "surrogatepass"))
    size += sum(
        len(key.encode("utf-8", "surrogatepass")) + len(data) for key, data in payloads.items()
    )
    if size > limit:
        raise TooLargeForRuntimeError(
            f"the manifest and payloads hold {size} bytes; one submission to the runtime "
            f"carries at most {limit}",
            limit,
        )


def _require_object(manifest_json: str) -> None:
    """Refuse text that cannot be a JSON object; judging the rest is the runtime's job.

    Only the first character is looked at, so a large manifest is not parsed twice.
    """
    if not manifest_json.lstrip().startswith("{"):
        raise RequestValidationError(
            "the manifest must be a JSON object",
            [{"loc": ["body", "manifest_json"], "msg": "must be a JSON object"}],
        )
