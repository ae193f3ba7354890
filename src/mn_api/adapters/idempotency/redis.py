"""RedisIdempotencyStore: keys in Redis, so every replica of the gateway sees every claim."""

from __future__ import annotations

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

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
    """A claim is one `SET NX`: atomic whichever replica sends it."""

    def __init__(self, client: Redis) -> None:
        self._redis = client

    async def claim(self, key: str, fingerprint: str, lease_seconds: float) -> Claim:
        value = orjson.dumps({"fingerprint": fingerprint, "answer": None})
        try:
            won = await self._redis.set(_PREFIX + key, value, nx=True, px=int(lease_seconds * 1000))
            if won:
                return Claim(won=True, fingerprint=fingerprint)
            stored = await self._redis.get(_PREFIX + key)
        except RedisError as err:
            raise SharedStateUnavailableError("the idempotency store cannot be used") from err
        if stored is None:  # it expired between the two calls: try once more
            return await self.claim(key, fingerprint, lease_seconds)
        data = orjson.loads(stored)
        answer = data["answer"]
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
        try:
            value = orjson.dumps(
                {
                    "fingerprint": fingerprint,
                    "answer": {
                        "status": answer.status,
                        "body": answer.body.decode("latin-1"),
                        "headers": answer.headers,
                    },
                }
            )
            await self._redis.set(_PREFIX + key, value, px=int(ttl_seconds * 1000))
        except RedisError as err:
            raise SharedStateUnavailableError("the idempotency store cannot be used") from err

    async def release(self, key: str) -> None:
        try:
            await self._redis.eval(_RELEASE, 1, _PREFIX + key)
        except RedisError as err:
            raise SharedStateUnavailableError("the idempotency store cannot be used") from err
