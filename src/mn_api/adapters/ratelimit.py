"""LimitsRateLimiter: per-caller request limits with the `limits` library (memory or Redis)."""

from __future__ import annotations

import math
import time

from limits import parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string

from mn_api.adapters.redis_client import limits_uri
from mn_api.application.ports import RateLimiter
from mn_api.config import RedisTarget
from mn_api.domain.errors import SharedStateUnavailableError


class LimitsRateLimiter(RateLimiter):
    """A moving window per caller; with Redis, one window shared by every replica."""

    def __init__(self, rate: str, redis: RedisTarget | None = None) -> None:
        self._item = parse(rate)
        storage: Storage
        if redis is not None:
            uri, options = limits_uri(redis)
            storage = storage_from_string(  # type: ignore[assignment]
                uri,
                implementation="redispy",
                wrap_exceptions=True,
                key_prefix="mn-api:rate",
                **options,
            )
        else:
            storage = MemoryStorage()
        self._limiter = MovingWindowRateLimiter(storage)

    async def hit(self, caller: str) -> int | None:
        try:
            if await self._limiter.hit(self._item, caller):
                return None
            stats = await self._limiter.get_window_stats(self._item, caller)
        except StorageError as err:
            raise SharedStateUnavailableError("the rate-limit store cannot be used") from err
        return max(1, math.ceil(stats.reset_time - time.time()))


class Unlimited(RateLimiter):
    """No MN_API_RATE_LIMIT: every request passes."""

    async def hit(self, caller: str) -> int | None:
        return None
