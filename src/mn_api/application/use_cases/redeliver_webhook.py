"""RedeliverWebhook: send one delivery again now, whatever became of it before."""

from __future__ import annotations

import time
from collections.abc import Callable

from mn_api.application.ports import WebhookStore
from mn_api.application.webhooks import DeliverySender, WebhookConfig
from mn_api.domain.webhooks.records import Delivery


class RedeliverWebhook:
    def __init__(
        self,
        store: WebhookStore,
        sender: DeliverySender,
        config: WebhookConfig,
        owner: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._sender = sender
        self._config = config
        self._owner = owner
        self._clock = clock

    async def __call__(self, job_id: str, delivery_id: str) -> Delivery:
        """The delivery with the new attempt; the receiver gets the same id and body."""
        now = self._clock()
        delivery = await self._store.claim_delivery(
            job_id, delivery_id, self._owner, now, now + self._config.lease_seconds
        )
        return await self._sender.attempt(delivery, self._owner, manual=True)
