"""ListWebhooks: a job's subscriptions and every delivery with its attempts."""

from __future__ import annotations

from dataclasses import dataclass

from mn_api.application.ports import RuntimePort, WebhookStore
from mn_api.domain.webhooks.records import Delivery, Subscription


@dataclass(frozen=True, slots=True)
class JobWebhooks:
    job_id: str
    subscriptions: list[Subscription]
    deliveries: list[Delivery]


class ListWebhooks:
    def __init__(self, store: WebhookStore, runtime: RuntimePort) -> None:
        self._store = store
        self._runtime = runtime

    async def __call__(self, job_id: str) -> JobWebhooks:
        subscriptions = await self._store.subscriptions(job_id)
        if not subscriptions:
            # An unknown job is a 404, a job without webhooks an empty list.
            await self._runtime.get_job(job_id)
            return JobWebhooks(job_id, [], [])
        return JobWebhooks(job_id, subscriptions, await self._store.deliveries(job_id))
