"""RedisWebhookStore: webhook state in Redis, shared by every replica of the gateway.

Layout (under `mn-api:{wh}:`): `subs:<job>` list of subscriptions, `watch:<job>` hash
(cursor, status, owner), `watches` sorted set of jobs by the time they are free to claim
(due time, or end of the current lease), `finished` sorted set of jobs whose watch ended,
`d:<id>` each delivery's document, `due` sorted set of pending deliveries by the same
rule as `watches`, `owners` hash and `held` sorted set of the holder and lease end of
each held delivery, and `job:<job>` sorted set of a job's deliveries by event position.

Every claim is one Lua script, hence atomic. A script is handed every key it touches in
KEYS: a claim first reads which jobs or deliveries are due, then the script takes those
still due. The hash tag `{wh}` keeps every key in one slot of a Redis Cluster, because
each claim touches a shared set and the keys of the jobs it claims together.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import orjson
from redis.asyncio import RedisCluster
from redis.exceptions import RedisError

from mn_api.adapters.redis_client import RedisClient, acknowledged
from mn_api.application.ports import WebhookStore
from mn_api.domain.errors import (
    SharedStateUnavailableError,
    WebhookDeliveryBusyError,
    WebhookDeliveryNotFoundError,
)
from mn_api.domain.webhooks.records import Delivery, DeliveryState, Subscription, Watch

T = TypeVar("T")
PREFIX = "mn-api:{wh}:"
# Where releases before the hash tag kept the same keys.
OLD_PREFIX = "mn-api:wh:"
WATCHES = PREFIX + "watches"
FINISHED = PREFIX + "finished"
DUE = PREFIX + "due"
OWNERS = PREFIX + "owners"
HELD = PREFIX + "held"
# A bound on the read-then-claim rounds of one claim, against claimers racing forever.
_CLAIM_ROUNDS = 8

# KEYS: watches, then watch:<job> of each job in ARGV[4..]; ARGV: now, lease end, owner.
_CLAIM_WATCHES = """
local out = {}
for i = 2, #KEYS do
  local job = ARGV[i + 2]
  local free_at = redis.call('ZSCORE', KEYS[1], job)
  if free_at and tonumber(free_at) <= tonumber(ARGV[1]) then
    redis.call('ZADD', KEYS[1], ARGV[2], job)
    redis.call('HSET', KEYS[i], 'owner', ARGV[3])
    local v = redis.call('HMGET', KEYS[i], 'cursor', 'status')
    table.insert(out, job)
    table.insert(out, v[1] or '-1')
    table.insert(out, v[2] or '')
  end
end
return out
"""
# KEYS: subs:<job>, watch:<job>, watches; ARGV: job, cursor, status, then subscriptions.
_SUBSCRIBE = """
for i = 4, #ARGV do
  redis.call('RPUSH', KEYS[1], ARGV[i])
end
redis.call('HSETNX', KEYS[2], 'cursor', ARGV[2])
redis.call('HSETNX', KEYS[2], 'status', ARGV[3])
redis.call('ZADD', KEYS[3], 'NX', 0, ARGV[1])
return 1
"""
_ADVANCE_WATCH = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
if not redis.call('ZSCORE', KEYS[2], ARGV[5]) then return 0 end
redis.call('HSET', KEYS[1], 'cursor', ARGV[2], 'status', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
return 1
"""
_END_WATCH = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], 'owner')
if ARGV[2] == '' then
  redis.call('ZREM', KEYS[2], ARGV[3])
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[3])
else
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
end
return 1
"""
# KEYS: due, then d:<id> and job:<job> of each delivery; ARGV: id, position, due time and
# document of each.
_ADD_DELIVERIES = """
for i = 2, #KEYS, 2 do
  local a = (i - 2) * 2 + 1
  if redis.call('SET', KEYS[i], ARGV[a + 3], 'NX') then
    redis.call('ZADD', KEYS[1], ARGV[a + 2], ARGV[a])
    redis.call('ZADD', KEYS[i + 1], ARGV[a + 1], ARGV[a])
  end
end
return 1
"""
# KEYS: due, owners, held, then d:<id> of each delivery in ARGV[4..]; ARGV: now, lease
# end, owner.
_CLAIM_DELIVERIES = """
local out = {}
for i = 4, #KEYS do
  local id = ARGV[i]
  local due_at = redis.call('ZSCORE', KEYS[1], id)
  if due_at and tonumber(due_at) <= tonumber(ARGV[1]) then
    local doc = redis.call('GET', KEYS[i])
    if doc then
      redis.call('ZADD', KEYS[1], ARGV[2], id)
      redis.call('HSET', KEYS[2], id, ARGV[3])
      redis.call('ZADD', KEYS[3], ARGV[2], id)
      table.insert(out, doc)
    else
      redis.call('ZREM', KEYS[1], id)
    end
  end
end
return out
"""
_CLAIM_DELIVERY = """
if not redis.call('ZSCORE', KEYS[4], ARGV[4]) then return {'missing'} end
local doc = redis.call('GET', KEYS[3])
if not doc then return {'missing'} end
local holder = redis.call('HGET', KEYS[2], ARGV[4])
local until_ = redis.call('ZSCORE', KEYS[5], ARGV[4])
if holder and until_ and tonumber(until_) > tonumber(ARGV[1]) then return {'busy'} end
if redis.call('ZSCORE', KEYS[1], ARGV[4]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
end
redis.call('HSET', KEYS[2], ARGV[4], ARGV[3])
redis.call('ZADD', KEYS[5], ARGV[2], ARGV[4])
return {'ok', doc}
"""
_SAVE_DELIVERY = """
if redis.call('HGET', KEYS[2], ARGV[4]) ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[2], ARGV[4])
redis.call('ZREM', KEYS[4], ARGV[4])
redis.call('SET', KEYS[3], ARGV[2])
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[1], ARGV[4])
else
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
end
return 1
"""
_RELEASE_DELIVERY = """
if redis.call('HGET', KEYS[2], ARGV[2]) ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[2])
if redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  redis.call('ZADD', KEYS[1], 0, ARGV[2])
end
return 1
"""


def _watch_key(job_id: str) -> str:
    return f"{PREFIX}watch:{job_id}"


def _subs_key(job_id: str) -> str:
    return f"{PREFIX}subs:{job_id}"


def _job_key(job_id: str) -> str:
    return f"{PREFIX}job:{job_id}"


def _delivery_key(delivery_id: str) -> str:
    return f"{PREFIX}d:{delivery_id}"


class RedisWebhookStore(WebhookStore):
    def __init__(self, client: RedisClient, replicas: int = 0) -> None:
        self._redis = client
        self._replicas = replicas
        self._moved = False
        self._moving = asyncio.Lock()
        self._scripts = {
            name: client.register_script(source)
            for name, source in (
                ("subscribe", _SUBSCRIBE),
                ("claim_watches", _CLAIM_WATCHES),
                ("advance_watch", _ADVANCE_WATCH),
                ("end_watch", _END_WATCH),
                ("add_deliveries", _ADD_DELIVERIES),
                ("claim_deliveries", _CLAIM_DELIVERIES),
                ("claim_delivery", _CLAIM_DELIVERY),
                ("save_delivery", _SAVE_DELIVERY),
                ("release_delivery", _RELEASE_DELIVERY),
            )
        }

    async def _call(self, pending: Awaitable[T]) -> T:
        try:
            if not self._moved:
                await self._move_old_keys()
            return await pending
        except RedisError as err:
            raise SharedStateUnavailableError("the webhook store cannot be used") from err

    async def _move_old_keys(self) -> None:
        """Adopt what gateways before the `{wh}` hash tag kept under `mn-api:wh:` (on one
        server: no cluster could hold that layout), once per process, before any use."""
        async with self._moving:
            if self._moved:
                return
            if not isinstance(self._redis, RedisCluster):
                async for old in self._redis.scan_iter(match=OLD_PREFIX + "*", count=500):
                    await self._redis.renamenx(old, PREFIX + old[len(OLD_PREFIX) :].decode())
            self._moved = True

    async def _script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        return await self._call(self._scripts[name](keys=keys, args=args))

    async def subscribe(self, subscriptions: Sequence[Subscription], watch: Watch) -> None:
        keys = [_subs_key(watch.job_id), _watch_key(watch.job_id), WATCHES]
        args = [watch.job_id, watch.cursor, watch.status or ""]
        args += [_dump(s.as_dict()) for s in subscriptions]
        # Acknowledged to the caller: held by the replicas a failover may promote.
        script = self._scripts["subscribe"]
        await self._call(
            acknowledged(
                self._redis, self._replicas, lambda c: script(keys=keys, args=args, client=c)
            )
        )

    async def subscriptions(self, job_id: str) -> list[Subscription]:
        docs = await self._call(self._redis.lrange(_subs_key(job_id), 0, -1))
        return [Subscription.from_dict(orjson.loads(doc)) for doc in docs]

    async def claim_watches(
        self, owner: str, now: float, lease_until: float, limit: int
    ) -> list[Watch]:
        async def take(jobs: list[str]) -> list[Watch]:
            flat = await self._script(
                "claim_watches",
                [WATCHES, *(_watch_key(j) for j in jobs)],
                [now, lease_until, owner, *jobs],
            )
            return [
                Watch(flat[i].decode(), int(flat[i + 1]), flat[i + 2].decode() or None)
                for i in range(0, len(flat), 3)
            ]

        return await self._claim_due(WATCHES, now, limit, take)

    async def _claim_due(
        self,
        key: str,
        now: float,
        limit: int,
        take: Callable[[list[str]], Awaitable[list[T]]],
    ) -> list[T]:
        """Read what is free to claim in `key`, let `take` claim those still free when its
        script runs, and read again for what other claimers took meanwhile: each round
        claims something or finds it gone from the free ones, so the loop ends."""
        claimed: list[T] = []
        for _ in range(_CLAIM_ROUNDS):
            free = await self._call(
                self._redis.zrangebyscore(key, "-inf", now, start=0, num=limit - len(claimed))
            )
            if not free:
                break
            claimed += await take([member.decode() for member in free])
            if len(claimed) >= limit:
                break
        return claimed

    async def advance_watch(self, watch: Watch, owner: str, lease_until: float) -> bool:
        held = await self._script(
            "advance_watch",
            [_watch_key(watch.job_id), WATCHES],
            [owner, watch.cursor, watch.status or "", lease_until, watch.job_id],
        )
        return bool(held)

    async def end_watch(self, job_id: str, owner: str, retry_at: float | None) -> None:
        await self._script(
            "end_watch",
            [_watch_key(job_id), WATCHES, FINISHED],
            [owner, "" if retry_at is None else retry_at, job_id, time.time()],
        )

    async def add_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        keys: list[str] = [DUE]
        args: list[Any] = []
        for d in deliveries:
            keys += [_delivery_key(d.id), _job_key(d.job_id)]
            args += [d.id, d.event_index, d.next_attempt_at or d.created_at, _dump(d.as_dict())]
        await self._script("add_deliveries", keys, args)

    async def claim_deliveries(
        self, owner: str, now: float, lease_until: float, limit: int
    ) -> list[Delivery]:
        async def take(ids: list[str]) -> list[Delivery]:
            docs = await self._script(
                "claim_deliveries",
                [DUE, OWNERS, HELD, *(_delivery_key(i) for i in ids)],
                [now, lease_until, owner, *ids],
            )
            return [Delivery.from_dict(orjson.loads(doc)) for doc in docs]

        return await self._claim_due(DUE, now, limit, take)

    async def claim_delivery(
        self, job_id: str, delivery_id: str, owner: str, now: float, lease_until: float
    ) -> Delivery:
        answer = await self._script(
            "claim_delivery",
            [DUE, OWNERS, _delivery_key(delivery_id), _job_key(job_id), HELD],
            [now, lease_until, owner, delivery_id],
        )
        if answer[0] == b"missing":
            raise WebhookDeliveryNotFoundError(job_id, delivery_id)
        if answer[0] == b"busy":
            raise WebhookDeliveryBusyError("this delivery is being sent right now")
        return Delivery.from_dict(orjson.loads(answer[1]))

    async def save_delivery(self, delivery: Delivery, owner: str) -> bool:
        pending = delivery.state is DeliveryState.PENDING
        held = await self._script(
            "save_delivery",
            [DUE, OWNERS, _delivery_key(delivery.id), HELD],
            [
                owner,
                _dump(delivery.as_dict()),
                (delivery.next_attempt_at or 0) if pending else "",
                delivery.id,
            ],
        )
        return bool(held)

    async def release_delivery(self, delivery_id: str, owner: str) -> None:
        await self._script("release_delivery", [DUE, OWNERS, HELD], [owner, delivery_id])

    async def deliveries(self, job_id: str) -> list[Delivery]:
        ids = await self._call(self._redis.zrange(_job_key(job_id), 0, -1))
        if not ids:
            return []
        docs = await self._call(self._redis.mget([_delivery_key(i.decode()) for i in ids]))
        return [Delivery.from_dict(orjson.loads(doc)) for doc in docs if doc is not None]

    async def purge(self, before: float) -> None:
        """Forget jobs whose watch ended before `before` and which have nothing pending."""
        jobs = await self._call(self._redis.zrangebyscore(FINISHED, "-inf", before))
        for raw in jobs:
            job_id = raw.decode()
            ids = [
                i.decode() for i in await self._call(self._redis.zrange(_job_key(job_id), 0, -1))
            ]
            if ids:
                scores = await self._call(self._redis.zmscore(DUE, ids))
                if any(score is not None for score in scores):
                    continue
            keys = [_subs_key(job_id), _watch_key(job_id), _job_key(job_id)]
            keys += [_delivery_key(i) for i in ids]
            async with self._redis.pipeline(transaction=True) as tx:
                tx.delete(*keys)
                tx.zrem(FINISHED, job_id)
                await self._call(tx.execute())


def _dump(data: object) -> str:
    return orjson.dumps(data).decode()
