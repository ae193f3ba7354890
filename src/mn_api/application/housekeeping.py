"""Housekeeping: what expires is removed on a timer, whether or not traffic comes."""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from mn_api.application.ports import BundleStore, IdempotencyStore, TopologyStore
from mn_api.domain.errors import DomainError

log = logging.getLogger("mn_api.housekeeping")


class Housekeeping:
    """Purges expired idempotency keys, bundles (with abandoned staging folders) and
    topologies every `interval_seconds`. Webhook records are purged by the webhook worker."""

    def __init__(
        self,
        *,
        idempotency: IdempotencyStore,
        bundles: BundleStore,
        topologies: TopologyStore,
        idempotency_ttl_seconds: float,
        interval_seconds: float,
    ) -> None:
        self._idempotency = idempotency
        self._bundles = bundles
        self._topologies = topologies
        self._idempotency_ttl = idempotency_ttl_seconds
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> dict[str, int]:
        """One pass; what each store removed (a store that cannot be reached is skipped)."""
        removed: dict[str, int] = {}
        for name, purge in (
            ("idempotency_keys", lambda: self._idempotency.purge(self._idempotency_ttl)),
            ("bundles", self._bundles.purge),
            ("topologies", self._topologies.purge),
        ):
            try:
                removed[name] = await purge()
            except DomainError as error:
                log.warning("purging %s failed: %s", name, error.detail)
            except Exception as error:
                log.warning("purging %s failed: %s", name, type(error).__name__)
        return removed

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            removed = await self.run_once()
            if any(removed.values()):
                log.info("purged %s", ", ".join(f"{n} {k}" for k, n in removed.items() if n))
            await asyncio.sleep(self._interval)
