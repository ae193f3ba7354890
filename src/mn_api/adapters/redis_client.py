"""The one Redis client every shared store uses, for a server, a cluster or Sentinel.

Keys that one script or transaction touches share a hash tag (`{...}`), and scripts
receive every key they touch in KEYS, so each store works the same on a cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import RedisError

from mn_api.application.ports import SharedStateProbe
from mn_api.config import RedisTarget
from mn_api.domain.errors import SharedStateUnavailableError

# What every store is typed against: the commands both clients share.
RedisClient = Redis | RedisCluster

# Short timeouts: a Redis that went away must give a prompt 503, never a hang.
_TIMEOUTS = {"socket_timeout": 2.0, "socket_connect_timeout": 2.0}


class _Cluster(RedisCluster):
    """redis-py's cluster client, which learns the cluster's slots before its first command
    is prepared. Commands racing the first use otherwise reach nodes half set up, and some
    fail on a connection with no socket (redis-py 8.1)."""

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        await self.initialize()  # returns at once once the slots are known
        return await super().execute_command(*args, **kwargs)


def connect(target: RedisTarget) -> RedisClient:
    if target.mode == "cluster":
        return _Cluster(
            startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
            username=target.username,
            password=target.password,
            **_TIMEOUTS,
        )
    if target.mode == "sentinel":
        sentinel = Sentinel(list(target.nodes), sentinel_kwargs=dict(_TIMEOUTS), **_TIMEOUTS)
        return sentinel.master_for(str(target.master), password=target.password, **_TIMEOUTS)
    return Redis.from_url(str(target.url), **_TIMEOUTS)


async def close(client: RedisClient) -> None:
    """Close the client and, for Sentinel, its connections to the sentinels."""
    await client.aclose()
    pool = getattr(client, "connection_pool", None)
    for sentinel in getattr(getattr(pool, "sentinel_manager", None), "sentinels", ()):
        await sentinel.aclose()


def replicas_to_wait_for(target: RedisTarget) -> int:
    """How many replicas must hold a write before the caller is told it was kept: one
    behind Sentinel, so that the replica a failover promotes has every acknowledged one."""
    return 1 if target.mode == "sentinel" else 0


# How long a write waits for replicas: a replica that is down must not stall every answer,
# and the write is kept on the primary either way.
REPLICA_WAIT_MS = 250


async def acknowledged(
    client: RedisClient, replicas: int, write: Callable[[Any], Awaitable[Any]]
) -> Any:
    """Run `write` (given the client to write with) and, with `replicas`, hold its answer
    until that many replicas have the write. WAIT counts only the writes of its own
    connection, so then `write` is given a pipeline that carries the WAIT after it."""
    if not replicas:
        return await write(client)
    async with client.pipeline(transaction=False) as pipe:
        await write(pipe)
        pipe.wait(replicas, REPLICA_WAIT_MS)
        return (await pipe.execute())[0]


def limits_uri(target: RedisTarget) -> tuple[str, dict[str, object]]:
    """The same place as a `limits` storage URI, with the options it needs beside it."""
    if target.mode == "sentinel":
        hosts = ",".join(f"{_host(h)}:{p}" for h, p in target.nodes)
        options: dict[str, object] = {
            "use_replicas": False,
            "sentinel_kwargs": dict(_TIMEOUTS),
            **_TIMEOUTS,
        }
        if target.password:
            options["password"] = target.password
        return f"async+redis+sentinel://{hosts}/{quote(str(target.master))}", options
    return f"async+{target.url}", dict(_TIMEOUTS)


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class RedisProbe(SharedStateProbe):
    """Pings the shared Redis; a failure names where it was looked for, never a password."""

    def __init__(self, client: RedisClient, where: str) -> None:
        self._client = client
        self._where = where

    async def ping(self, deadline_seconds: float) -> None:
        try:
            async with asyncio.timeout(deadline_seconds):
                await self._client.ping()
        except (RedisError, OSError, TimeoutError) as err:
            raise SharedStateUnavailableError(
                f"Redis ({self._where}) does not answer: {type(err).__name__}"
            ) from err
