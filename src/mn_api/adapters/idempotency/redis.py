"""RedisIdempotencyStore: keys in Redis, so every replica of the gateway sees every claim."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
from redis.exceptions import RedisError

from mn_api.adapters.redis_client import RedisClient, acknowledged
from mn_api.application.ports import Claim, IdempotencyStore, StoredAnswer
from mn_api.domain.errors import SharedStateUnavailableError

_PREFIX = "mn-api:idem:"
# Delete the key only while it is still an unanswered claim.
_RELEASE = """
local value = redis.call('GET', KEYS[1])
if value and string.find(value, '"answer":null', 1, true) then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisIdempotencyStore(IdempotencyStore):
    """A claim is one `SET NX`: atomic whichever replica sends it. Every record lives for
    the time to live; a claim also carries the end of its lease, after which nobody holds
    it and its outcome is unknown. With `replicas`, an answer is kept only once that many
    replicas hold it too (or a short wait ran out), so that a failover keeps it."""

    def __init__(
        self, client: RedisClient, clock: Callable[[], float] = time.time, replicas: int = 0
    ) -> None:
        self._redis = client
        self._clock = clock
        self._replicas = replicas

    async def claim(
        self, key: str, fingerprint: str, lease_seconds: float, ttl_seconds: float
    ) -> Claim:
        now = self._clock()
        value = orjson.dumps(
            {"fingerprint": fingerprint, "answer": None, "lease_until": now + lease_seconds}
        )
        try:
            won = await self._redis.set(_PREFIX + key, value, nx=True, px=_ms(ttl_seconds))
            if won:
                return Claim(won=True, fingerprint=fingerprint)
            stored = await self._redis.get(_PREFIX + key)
        except RedisError as err:
            raise _unavailable(err) from err
        if stored is None:  # it expired between the two calls: try once more
            return await self.claim(key, fingerprint, lease_seconds, ttl_seconds)
        data = orjson.loads(stored)
        answer = data.get("answer")
        if data.get("unknown") or (answer is None and data.get("lease_until", 0) <= now):
            return Claim(won=False, fingerprint=data["fingerprint"], unknown=True)
        return Claim(
            won=False,
            fingerprint=data["fingerprint"],
            answer=None
            if answer is None
            else StoredAnswer(
                answer["status"],
                answer["body"].encode("latin-1"),
                tuple(tuple(h) for h in answer["headers"]),
            ),
        )

    async def complete(
        self, key: str, fingerprint: str, answer: StoredAnswer, ttl_seconds: float
    ) -> None:
        record = {
            "status": answer.status,
            "body": answer.body.decode("latin-1"),
            "headers": answer.headers,
        }
        await self._keep(key, {"fingerprint": fingerprint, "answer": record}, ttl_seconds)

    async def mark_unknown(self, key: str, fingerprint: str, ttl_seconds: float) -> None:
        await self._keep(key, {"fingerprint": fingerprint, "unknown": True}, ttl_seconds)

    async def _keep(self, key: str, record: dict[str, Any], ttl_seconds: float) -> None:
        try:
            value, px = orjson.dumps(record), _ms(ttl_seconds)
            await acknowledged(
                self._redis, self._replicas, lambda c: c.set(_PREFIX + key, value, px=px)
            )
        except RedisError as err:
            raise _unavailable(err) from err

    async def release(self, key: str) -> None:
        try:
            await self._redis.eval(_RELEASE, 1, _PREFIX + key)
        except RedisError as err:
            raise _unavailable(err) from err

    async def purge(self, ttl_seconds: float) -> int:
        return 0  # every key carries its own expiry


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _unavailable(err: RedisError) -> SharedStateUnavailableError:
    return SharedStateUnavailableError("the idempotency store cannot be used")
