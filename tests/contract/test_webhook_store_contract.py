"""WebhookStore: one contract for SQLite and for Redis (leases, claims, idempotent adds)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import orjson
import pytest

from mn_api.adapters.redis_client import RedisClient
from mn_api.adapters.webhooks.redis import RedisWebhookStore
from mn_api.adapters.webhooks.sqlite import SqliteWebhookStore
from mn_api.application.ports import WebhookStore
from mn_api.domain.errors import WebhookDeliveryBusyError, WebhookDeliveryNotFoundError
from mn_api.domain.webhooks.records import (
    Attempt,
    Delivery,
    DeliveryState,
    Subscription,
    Watch,
    delivery_id,
)
from tests.contract.conftest import REDIS_KINDS, redis_client, replicas_of
from tests.support import EPOCH

NOW = EPOCH
LEASE = 30.0


@pytest.fixture(params=["sqlite", *REDIS_KINDS])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> WebhookStore:
    if request.param == "sqlite":
        return SqliteWebhookStore(tmp_path / "state.sqlite3")
    client = redis_client(request, request.param)
    return RedisWebhookStore(client, replicas=replicas_of(request.param))


def subscription(job_id: str, n: int = 1) -> Subscription:
    return Subscription(
        id=f"whs_{job_id}_{n}",
        job_id=job_id,
        url=f"https://hooks.example.com/{n}",
        events=("job_completed", "dead_letter"),
        source="job",
        created_at=NOW,
    )


def delivery(job_id: str, index: int, due: float = NOW) -> Delivery:
    ident = delivery_id(f"whs_{job_id}_1", index)
    return Delivery(
        id=ident,
        job_id=job_id,
        subscription_id=f"whs_{job_id}_1",
        url="https://hooks.example.com/1",
        event_type="dead_letter",
        event_index=index,
        body=f'{{"id":"{ident}"}}',
        created_at=NOW,
        next_attempt_at=due,
    )


async def test_subscriptions_come_back_with_a_watch_from_the_start(store: WebhookStore) -> None:
    subs = [subscription("job-a", 1), subscription("job-a", 2)]
    await store.subscribe(subs, Watch("job-a", -1, "pending"))
    assert await store.subscriptions("job-a") == subs
    assert await store.subscriptions("job-b") == []
    assert await store.claim_watches("one", NOW, NOW + LEASE, 10) == [Watch("job-a", -1, "pending")]


async def test_a_watch_is_held_by_one_owner_until_its_lease_ends(store: WebhookStore) -> None:
    await store.subscribe([subscription("job-a")], Watch("job-a", -1, "pending"))
    results = await asyncio.gather(
        *(store.claim_watches(f"owner-{n}", NOW, NOW + LEASE, 10) for n in range(8))
    )
    assert sum(len(r) for r in results) == 1
    winner = f"owner-{next(n for n, r in enumerate(results) if r)}"

    assert not await store.advance_watch(Watch("job-a", 4, "running"), "intruder", NOW + LEASE)
    assert await store.advance_watch(Watch("job-a", 4, "running"), winner, NOW + LEASE)
    assert await store.claim_watches("other", NOW + LEASE - 1, NOW + 2 * LEASE, 10) == []
    # The holder stopped renewing: the next claimant resumes where it got to.
    taken = await store.claim_watches("other", NOW + LEASE, NOW + 2 * LEASE, 10)
    assert taken == [Watch("job-a", 4, "running")]
    assert not await store.advance_watch(Watch("job-a", 9, "running"), winner, NOW + 3 * LEASE)


async def test_ended_watches_are_not_claimed_again_but_paused_ones_are(
    store: WebhookStore,
) -> None:
    for job in ("job-a", "job-b"):
        await store.subscribe([subscription(job)], Watch(job, -1, "pending"))
    assert len(await store.claim_watches("one", NOW, NOW + LEASE, 10)) == 2
    await store.end_watch("job-a", "one", None)
    await store.end_watch("job-b", "one", NOW + 5)
    await store.end_watch("job-b", "someone-else", None)  # not theirs: ignored
    assert await store.claim_watches("two", NOW + 4, NOW + LEASE, 10) == []
    assert [w.job_id for w in await store.claim_watches("two", NOW + 5, NOW + LEASE, 10)] == [
        "job-b"
    ]


async def test_adding_a_delivery_twice_keeps_the_first(store: WebhookStore) -> None:
    first = delivery("job-a", 3)
    await store.add_deliveries([first, delivery("job-a", 1)])
    await store.add_deliveries([dataclasses.replace(first, body="{}"), delivery("job-a", 1)])
    assert [(d.event_index, d.body) for d in await store.deliveries("job-a")] == [
        (1, delivery("job-a", 1).body),
        (3, first.body),
    ]
    assert await store.deliveries("job-b") == []


async def test_each_due_delivery_is_claimed_once(store: WebhookStore) -> None:
    await store.add_deliveries([delivery("job-a", i) for i in range(20)])
    await store.add_deliveries([delivery("job-b", 0, due=NOW + 100)])
    results = await asyncio.gather(
        *(store.claim_deliveries(f"owner-{n}", NOW, NOW + LEASE, 7) for n in range(5))
    )
    claimed = [d.id for r in results for d in r]
    assert sorted(claimed) == sorted(delivery("job-a", i).id for i in range(20))
    assert await store.claim_deliveries("late", NOW + LEASE - 1, NOW + 2 * LEASE, 50) == []


async def test_saving_needs_the_lease_and_sets_the_next_attempt(store: WebhookStore) -> None:
    await store.add_deliveries([delivery("job-a", 0)])
    [held] = await store.claim_deliveries("one", NOW, NOW + LEASE, 10)
    retried = held.with_attempt(Attempt(NOW, 0.1, 500), DeliveryState.PENDING, NOW + 60)
    assert not await store.save_delivery(retried, "intruder")
    assert await store.save_delivery(retried, "one")
    assert not await store.save_delivery(retried, "one")  # saving lets go
    assert await store.claim_deliveries("two", NOW + 59, NOW + 90, 10) == []
    [again] = await store.claim_deliveries("two", NOW + 60, NOW + 90, 10)
    assert again == retried

    done = again.with_attempt(Attempt(NOW + 60, 0.1, 200), DeliveryState.DELIVERED, None)
    assert await store.save_delivery(done, "two")
    assert await store.claim_deliveries("three", NOW + 10_000, NOW + 10_100, 10) == []
    assert await store.deliveries("job-a") == [done]


async def test_a_delivery_is_taken_by_hand_unless_someone_is_sending_it(
    store: WebhookStore,
) -> None:
    await store.add_deliveries([delivery("job-a", 0)])
    ident = delivery("job-a", 0).id
    with pytest.raises(WebhookDeliveryNotFoundError):
        await store.claim_delivery("job-b", ident, "me", NOW, NOW + LEASE)
    with pytest.raises(WebhookDeliveryNotFoundError):
        await store.claim_delivery("job-a", "whd_" + "0" * 24, "me", NOW, NOW + LEASE)
    [held] = await store.claim_deliveries("worker", NOW, NOW + LEASE, 10)
    with pytest.raises(WebhookDeliveryBusyError):
        await store.claim_delivery("job-a", ident, "me", NOW + 1, NOW + LEASE)
    await store.release_delivery(ident, "worker")
    taken = await store.claim_delivery("job-a", ident, "me", NOW + 1, NOW + LEASE)
    assert taken == held
    # Held by hand: the dispatcher does not take it meanwhile.
    assert await store.claim_deliveries("worker", NOW + 2, NOW + LEASE, 10) == []
    done = taken.with_attempt(
        Attempt(NOW + 1, 0.1, 200, manual=True), DeliveryState.DELIVERED, None
    )
    assert await store.save_delivery(done, "me")
    # A settled delivery can still be taken by hand, but never by the dispatcher.
    assert await store.claim_delivery("job-a", ident, "me", NOW + 2, NOW + LEASE) == done
    assert await store.claim_deliveries("worker", NOW + 10_000, NOW + 10_100, 10) == []


async def test_purge_forgets_finished_jobs_only(store: WebhookStore) -> None:
    for job in ("job-done", "job-waiting"):
        await store.subscribe([subscription(job)], Watch(job, -1, "pending"))
        await store.add_deliveries([delivery(job, 0)])
    await store.claim_watches("one", NOW, NOW + LEASE, 10)
    for job in ("job-done", "job-waiting"):
        await store.end_watch(job, "one", None)
    for held in await store.claim_deliveries("one", NOW, NOW + LEASE, 10):
        state = DeliveryState.DELIVERED if held.job_id == "job-done" else DeliveryState.PENDING
        next_at = None if state is DeliveryState.DELIVERED else NOW + 60
        await store.save_delivery(held.with_attempt(Attempt(NOW, 0.1, 200), state, next_at), "one")

    await store.purge(before=0)  # nothing is that old
    assert len(await store.deliveries("job-done")) == 1

    await store.purge(before=NOW * 2)
    assert await store.deliveries("job-done") == []
    assert await store.subscriptions("job-done") == []
    assert len(await store.deliveries("job-waiting")) == 1
    assert len(await store.subscriptions("job-waiting")) == 1


async def test_state_kept_before_the_hash_tag_is_adopted(
    redis_server_client: RedisClient,
) -> None:
    """A server holding webhook state in the layout before `{wh}` (under `mn-api:wh:`):
    a gateway of this release carries on with it."""
    sub = subscription("job-a")
    await redis_server_client.rpush("mn-api:wh:subs:job-a", orjson.dumps(sub.as_dict()))
    await redis_server_client.hset("mn-api:wh:watch:job-a", mapping={"cursor": 4, "status": ""})
    await redis_server_client.zadd("mn-api:wh:watches", {"job-a": 0})
    store = RedisWebhookStore(redis_server_client)
    assert await store.subscriptions("job-a") == [sub]
    assert await store.claim_watches("one", NOW, NOW + LEASE, 10) == [Watch("job-a", 4, None)]
    assert await redis_server_client.keys("mn-api:wh:*") == []
