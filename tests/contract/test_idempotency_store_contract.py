"""IdempotencyStore: one contract, for SQLite and for Redis (a server, a cluster,
Sentinel)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mn_api.adapters.idempotency.redis import RedisIdempotencyStore
from mn_api.adapters.idempotency.sqlite import SqliteIdempotencyStore
from mn_api.application.ports import IdempotencyStore, StoredAnswer
from tests.contract.conftest import REDIS_KINDS, redis_client, replicas_of


@pytest.fixture(params=["sqlite", *REDIS_KINDS])
def keys(request: pytest.FixtureRequest, tmp_path: Path) -> IdempotencyStore:
    if request.param == "sqlite":
        return SqliteIdempotencyStore(tmp_path / "keys.sqlite3")
    client = redis_client(request, request.param)
    return RedisIdempotencyStore(client, replicas=replicas_of(request.param))


async def test_the_first_claim_wins_and_later_ones_see_it(keys: IdempotencyStore) -> None:
    first = await keys.claim("k1", "fp", lease_seconds=60, ttl_seconds=60)
    assert first.won
    again = await keys.claim("k1", "fp", lease_seconds=60, ttl_seconds=60)
    assert not again.won and again.answer is None and again.fingerprint == "fp"
    answer = StoredAnswer(201, b'{"id":"x"}', (("location", "/x"),))
    await keys.complete("k1", "fp", answer, ttl_seconds=60)
    replay = await keys.claim("k1", "other", lease_seconds=60, ttl_seconds=60)
    assert not replay.won and replay.fingerprint == "fp" and replay.answer == answer


async def test_racing_claims_have_exactly_one_winner(keys: IdempotencyStore) -> None:
    claims = await asyncio.gather(*(keys.claim("race", f"fp{i}", 60, 60) for i in range(20)))
    assert sum(c.won for c in claims) == 1


async def test_a_released_claim_can_be_taken_again(keys: IdempotencyStore) -> None:
    assert (await keys.claim("k2", "fp", 60, 60)).won
    await keys.release("k2")
    assert (await keys.claim("k2", "fp2", 60, 60)).won


async def test_answered_keys_are_not_released(keys: IdempotencyStore) -> None:
    assert (await keys.claim("k3", "fp", 60, 60)).won
    await keys.complete("k3", "fp", StoredAnswer(201, b"{}"), ttl_seconds=60)
    await keys.release("k3")
    assert (await keys.claim("k3", "fp", 60, 60)).answer == StoredAnswer(201, b"{}")


async def test_answers_expire_and_abandoned_claims_become_unknown(keys: IdempotencyStore) -> None:
    assert (await keys.claim("k4", "fp", 60, 60)).won
    await keys.complete("k4", "fp", StoredAnswer(201, b"{}"), ttl_seconds=0.05)
    await asyncio.sleep(0.1)
    assert (await keys.claim("k4", "fp", 60, 60)).won
    # Its holder went away after the lease: the request may have run, so it never runs again.
    assert (await keys.claim("k5", "fp", lease_seconds=0.05, ttl_seconds=60)).won
    await asyncio.sleep(0.1)
    abandoned = await keys.claim("k5", "fp", 60, 60)
    assert not abandoned.won and abandoned.unknown and abandoned.answer is None


async def test_a_lost_outcome_is_kept_as_unknown(keys: IdempotencyStore) -> None:
    assert (await keys.claim("k6", "fp", 60, 60)).won
    await keys.mark_unknown("k6", "fp", ttl_seconds=60)
    await keys.release("k6")  # an outcome, not a claim: it stays
    later = await keys.claim("k6", "fp", 60, 60)
    assert not later.won and later.unknown and later.fingerprint == "fp"


async def test_a_record_is_kept_even_when_its_claim_was_lost(keys: IdempotencyStore) -> None:
    # A store restarted empty no longer holds the claim; the answer must still be kept.
    await keys.complete("k7", "fp", StoredAnswer(201, b"{}"), ttl_seconds=60)
    assert (await keys.claim("k7", "fp", 60, 60)).answer == StoredAnswer(201, b"{}")


async def test_purge_removes_expired_answers(keys: IdempotencyStore) -> None:
    assert (await keys.claim("k8", "fp", 60, 60)).won
    await keys.complete("k8", "fp", StoredAnswer(201, b"{}"), ttl_seconds=0.05)
    await asyncio.sleep(0.1)
    await keys.purge(60)
    assert (await keys.claim("k8", "fp2", 60, 60)).won
