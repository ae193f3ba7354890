"""RedisTopologyStore: jobs' declared topologies in Redis, shared by every replica."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from redis.exceptions import RedisError

from mn_api.adapters.redis_client import RedisClient
from mn_api.application.ports import TopologyStore
from mn_api.domain.errors import SharedStateUnavailableError
from mn_api.domain.graph import topology_of

_PREFIX = "mn-api:topology:"


class RedisTopologyStore(TopologyStore):
    def __init__(self, client: RedisClient, ttl_seconds: float) -> None:
        self._redis = client
        self._ttl_ms = int(ttl_seconds * 1000)

    async def save(self, job_id: str, manifest_json: str) -> None:
        await self.save_many([(job_id, orjson.dumps(topology_of(orjson.loads(manifest_json))))])

    async def save_many(self, topologies: Sequence[tuple[str, bytes]]) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for job_id, blob in topologies:
                    pipe.set(_PREFIX + job_id, blob, px=self._ttl_ms)
                await pipe.execute()
        except RedisError as err:
            raise SharedStateUnavailableError("the topology store cannot be used") from err

    async def load(self, job_id: str) -> Mapping[str, Any] | None:
        try:
            blob = await self._redis.get(_PREFIX + job_id)
        except RedisError as err:
            raise SharedStateUnavailableError("the topology store cannot be used") from err
        return orjson.loads(blob) if blob else None

    async def forget(self, job_id: str) -> None:
        try:
            await self._redis.delete(_PREFIX + job_id)
        except RedisError as err:
            raise SharedStateUnavailableError("the topology store cannot be used") from err

    async def purge(self) -> int:
        return 0  # every key carries its own expiry
