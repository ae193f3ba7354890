"""Webhooks: check what a submitter asks to be told about, and record it with the job."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mn_api.application.ports import HostResolver, WebhookStore
from mn_api.application.webhooks.config import WebhookConfig
from mn_api.domain.errors import RequestValidationError
from mn_api.domain.webhooks.records import DEFAULT_EVENTS, SUBSCRIBABLE_EVENTS, Subscription, Watch
from mn_api.domain.webhooks.url_policy import WebhookTarget


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """One webhook asked for at submission; `events` None means the terminal ones."""

    url: str
    events: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class PlannedSubscription:
    """A subscription that passed every check and waits for its job's id."""

    target: WebhookTarget
    events: tuple[str, ...]
    source: str


class Webhooks:
    def __init__(
        self,
        store: WebhookStore,
        resolver: HostResolver,
        config: WebhookConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._resolver = resolver
        self._config = config
        self._clock = clock
        self._listeners: list[Callable[[], None]] = []

    def on_subscribed(self, listener: Callable[[], None]) -> None:
        """Call `listener` whenever a job gets subscriptions (the worker wakes up)."""
        self._listeners.append(listener)

    async def plan(self, request: WebhookRequest | None) -> list[PlannedSubscription]:
        """Check the asked-for webhook (URL policy, then where its host resolves) and add
        the global ones; raises before anything was submitted."""
        planned: list[PlannedSubscription] = []
        if request is not None:
            events = _check_events(request.events)
            target = self._config.policy.check_url(request.url)
            addresses = await self._resolver.resolve(target.host, target.port)
            self._config.policy.check_addresses(target.host, addresses)
            planned.append(PlannedSubscription(target, events, "job"))
        for url in self._config.global_urls:
            # Checked at startup too; where the host resolves is checked on every connection.
            target = self._config.policy.check_url(url)
            planned.append(PlannedSubscription(target, self._config.global_events, "global"))
        return planned

    async def subscribe(
        self, job_id: str, status: str, planned: Sequence[PlannedSubscription]
    ) -> list[Subscription]:
        if not planned:
            return []
        now = self._clock()
        subscriptions = [
            Subscription(
                id=f"whs_{secrets.token_hex(8)}",
                job_id=job_id,
                url=p.target.url,
                events=p.events,
                source=p.source,
                created_at=now,
            )
            for p in planned
        ]
        await self._store.subscribe(subscriptions, Watch(job_id, -1, status))
        for listener in self._listeners:
            listener()
        return subscriptions


def _check_events(events: tuple[str, ...] | None) -> tuple[str, ...]:
    if events is None:
        return DEFAULT_EVENTS
    unknown = sorted(set(events) - SUBSCRIBABLE_EVENTS)
    if not events or unknown:
        detail = f"unknown webhook event {unknown[0]!r}" if unknown else "no webhook events named"
        raise RequestValidationError(
            detail, [{"loc": ["body", "webhook", "events"], "msg": detail}]
        )
    return tuple(dict.fromkeys(events))
