"""LimitsRateLimiter: per-caller request limits with the `limits` library (memory or Redis)."""

from __future__ import annotations

import math
import time

from limits import parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from mn_api.application.ports import RateLimiter
from mn_api.domain.errors import SharedStateUnavailableError


class LimitsRateLimiter(RateLimiter):
    """A moving window per caller; with Redis, one window shared by every replica."""

    def __init__(self, rate: str, redis_url: str | None = None) -> None:
        self._item = parse(rate)
        storage: Storage
        if redis_url:
            storage = RedisStorage(
                f"async+{redis_url}",
                implementation="redispy",
                wrap_exceptions=True,
                socket_timeout=2,
                socket_connect_timeout=2,
                key_prefix="mn-api:rate",
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
