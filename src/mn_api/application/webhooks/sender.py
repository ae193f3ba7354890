"""DeliverySender: one signed attempt at a delivery, and what follows from its answer."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from contextlib import suppress

from mn_api.application.ports import NotifierPort, SendResult, Telemetry, WebhookStore
from mn_api.application.webhooks.config import WebhookConfig
from mn_api.domain.errors import DomainError, WebhookUrlNotAllowedError
from mn_api.domain.webhooks.records import Attempt, Delivery, DeliveryState
from mn_api.domain.webhooks.retries import Outcome, decide, retry_delay
from mn_api.domain.webhooks.signing import signature

log = logging.getLogger("mn_api.webhooks")

_STATE_AFTER = {
    Outcome.DELIVERED: DeliveryState.DELIVERED,
    Outcome.RETRY: DeliveryState.PENDING,
    Outcome.GONE: DeliveryState.FAILED,
    Outcome.EXHAUSTED: DeliveryState.FAILED,
    Outcome.REFUSED: DeliveryState.FAILED,
}


class DeliverySender:
    def __init__(
        self,
        store: WebhookStore,
        notifier: NotifierPort,
        telemetry: Telemetry,
        config: WebhookConfig,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
        user_agent: str = "MirrorNeuron-Webhooks",
    ) -> None:
        self._store = store
        self._notifier = notifier
        self._telemetry = telemetry
        self._config = config
        self._clock = clock
        self._jitter = jitter
        self._user_agent = user_agent

    def headers(self, delivery: Delivery, timestamp: int) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "User-Agent": self._user_agent,
            "webhook-id": delivery.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(
                self._config.secrets, delivery.id, timestamp, delivery.body
            ),
        }

    async def attempt(self, delivery: Delivery, owner: str, *, manual: bool = False) -> Delivery:
        """Send `delivery` (held by `owner`) once, record the attempt and let go of it.
        Stopped half way (the process stops, the caller leaves), it lets go of the
        delivery unchanged, so the next try need not wait for the lease to run out."""
        try:
            return await self._attempt(delivery, owner, manual)
        except asyncio.CancelledError:
            with suppress(DomainError):
                await asyncio.shield(self._store.release_delivery(delivery.id, owner))
            raise

    async def _attempt(self, delivery: Delivery, owner: str, manual: bool) -> Delivery:
        now = self._clock()
        try:
            # The policy may have changed since the subscription was made.
            self._config.policy.check_url(delivery.url)
        except WebhookUrlNotAllowedError as refusal:
            result = SendResult(0.0, error=refusal.detail, refused=True)
        else:
            result = await self._notifier.send(
                delivery.url, delivery.body.encode(), self.headers(delivery, int(now))
            )
        attempt = Attempt(
            at=now,
            seconds=result.seconds,
            status_code=result.status_code,
            error=result.error,
            manual=manual,
        )
        number = len(delivery.attempts) + 1
        outcome = decide(attempt, number, self._config.max_attempts, refused=result.refused)
        if manual and delivery.state is not DeliveryState.PENDING:
            # A delivery that was already settled only changes when the new try succeeds.
            state = DeliveryState.DELIVERED if attempt.succeeded else delivery.state
            next_at = None
        else:
            state = _STATE_AFTER[outcome]
            next_at = (
                now + retry_delay(number, self._config.retry_base_seconds, self._jitter)
                if outcome is Outcome.RETRY
                else None
            )
        updated = delivery.with_attempt(attempt, state, next_at)
        self._telemetry.webhook_attempt(outcome.value, result.seconds)
        log.info(
            "webhook %s for job %s attempt %d: %s (%s)",
            delivery.id,
            delivery.job_id,
            number,
            outcome.value,
            result.status_code if result.status_code is not None else result.error,
        )
        if not await self._store.save_delivery(updated, owner):
            log.warning("webhook %s: lease lost before the attempt was saved", delivery.id)
        return updated
