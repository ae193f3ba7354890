"""RateLimiter: replicas share one window per caller, on every Redis deployment."""

from __future__ import annotations

import pytest

from mn_api.adapters.ratelimit import LimitsRateLimiter
from mn_api.config import RedisTarget
from tests.contract.conftest import REDIS_KINDS, redis_settings


@pytest.fixture(params=["memory", *REDIS_KINDS])
def shared(request: pytest.FixtureRequest) -> RedisTarget | None:
    return None if request.param == "memory" else redis_settings(request, request.param).redis


async def test_replicas_share_one_window_per_caller(shared: RedisTarget | None) -> None:
    target = shared
    first = LimitsRateLimiter("5/minute", target)
    # Two replicas share one window through Redis; without it each process has its own.
    second = LimitsRateLimiter("5/minute", target) if target else first
    waits = [await (first if i % 2 else second).hit("caller-a") for i in range(5)]
    assert waits == [None] * 5
    refused = await second.hit("caller-a")
    assert refused is not None and 1 <= refused <= 60
    assert await first.hit("caller-b") is None  # every caller has a window of its own
