"""Shared state behind Sentinel, and on a cluster, through a real gateway process.

The failover test kills the primary under traffic: requests that need shared state answer
503 `shared_state_unavailable` until the sentinels have promoted the replica, then work on
it, and every Idempotency-Key answered before the failover still replays.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support import (
    FakeCoreProcess,
    GatewayProcess,
    RedisClusterServers,
    RedisSentinelGroup,
    make_zip,
    pipeline_manifest,
)

pytestmark = pytest.mark.slow
API = "/api/v1"
BUNDLE = make_zip(
    {
        "manifest.json": b'{"manifest_version": "1", "graph_id": "bundled", "nodes": '
        b'[{"node_id": "a", "agent_type": "sensor"}], "entrypoints": ["a"]}'
    }
)


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[RedisSentinelGroup]:
    """A group of its own: this test fails its primary over."""
    (tmp_path / "redis").mkdir()
    group = RedisSentinelGroup(tmp_path / "redis").start()
    yield group
    group.stop()


@dataclass
class Traffic:
    """Keyed submissions sent one after another, each answer kept with its time."""

    client: httpx.AsyncClient
    base: str
    answers: list[tuple[float, str, httpx.Response]] = field(default_factory=list)
    keys: Iterator[int] = field(default_factory=itertools.count)

    async def submit(self) -> tuple[float, str, httpx.Response]:
        key = f"traffic-{next(self.keys)}"
        answer = await self.client.post(
            f"{self.base}{API}/jobs",
            json={"manifest": pipeline_manifest()},
            headers={"Idempotency-Key": key},
        )
        sent = (time.monotonic(), key, answer)
        self.answers.append(sent)
        return sent

    async def run_until(self, done: asyncio.Event) -> None:
        while not done.is_set():
            await self.submit()
            await asyncio.sleep(0.02)


def _acknowledged(answers: list[tuple[float, str, httpx.Response]]) -> dict[str, str]:
    return {key: a.json()["job_id"] for _, key, a in answers if a.status_code == 201}


async def _replays(client: httpx.AsyncClient, base: str, keys: dict[str, str]) -> None:
    """Each key answered before comes back as the same job, replayed, not run again."""
    for key, job_id in keys.items():
        again = await client.post(
            f"{base}{API}/jobs",
            json={"manifest": pipeline_manifest()},
            headers={"Idempotency-Key": key},
        )
        assert again.status_code == 201, (key, again.text)
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json()["job_id"] == job_id


async def test_a_failover_costs_a_few_seconds_of_503_and_loses_no_acknowledged_key(
    tmp_path: Path, core: FakeCoreProcess, sentinels: RedisSentinelGroup
) -> None:
    gateway = GatewayProcess(
        tmp_path,
        "grpc",
        core=core,
        MN_REDIS_SENTINELS=sentinels.sentinels,
        MN_REDIS_SENTINEL_MASTER=sentinels.master,
        MN_API_RATE_LIMIT="100000/minute",  # the rate limiter's window lives there too
    ).start()
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            traffic = Traffic(client, gateway.base)
            for _ in range(20):
                await traffic.submit()
            before = _acknowledged(traffic.answers)
            assert len(before) == 20
            # What a caller was told is kept is on the replica too: WAIT travelled with it.
            kept = sentinels.replica.command(
                "EVAL", "\"return #redis.call('KEYS', ARGV[1])\"", "0", "mn-api:idem:*"
            )
            assert kept == b":20\r\n"
            uploaded = await client.post(
                f"{gateway.base}{API}/bundles/upload", files={"bundle": ("b.zip", BUNDLE)}
            )
            assert uploaded.status_code == 201

            old_primary = sentinels.primary.port
            done = asyncio.Event()
            running = asyncio.create_task(traffic.run_until(done))
            await asyncio.sleep(0.3)
            killed_at = time.monotonic()
            sentinels.primary.kill()

            async def recovered() -> bool:
                recent = [a for t, _, a in traffic.answers if t > killed_at]
                failed = [i for i, a in enumerate(recent) if a.status_code != 201]
                # Recovered: it failed, then ten answers in a row were kept.
                return bool(failed) and len(recent) - failed[-1] > 10

            deadline = time.monotonic() + 60
            while not await recovered():
                assert time.monotonic() < deadline, "no recovery within a minute"
                assert not running.done(), running
                await asyncio.sleep(0.1)
            done.set()
            await running

            after_kill = [(t, a) for t, _, a in traffic.answers if t > killed_at]
            refused = [(t, a) for t, a in after_kill if a.status_code != 201]
            for _, answer in refused:
                assert answer.status_code == 503, answer.text
                assert answer.headers["content-type"].startswith("application/problem+json")
                assert answer.json()["error"] == "shared_state_unavailable"
            outage = refused[-1][0] - killed_at
            print(f"\nfailover: {len(refused)} answers refused, service back {outage:.2f} s "
                  "after the primary was killed")  # fmt: skip

            assert sentinels.current_primary_port() == sentinels.replica.port != old_primary
            assert gateway.process is not None and gateway.process.poll() is None
            # Nothing acknowledged is lost: before the failover, or during it.
            await _replays(client, gateway.base, before | _acknowledged(traffic.answers))
            submitted = await client.post(
                f"{gateway.base}{API}/jobs", json={"bundle_id": uploaded.json()["bundle_id"]}
            )
            assert submitted.status_code == 201, submitted.text
    finally:
        gateway.stop()


async def test_a_gateway_keeps_its_shared_state_on_a_cluster(
    tmp_path: Path, core: FakeCoreProcess, redis_cluster: RedisClusterServers
) -> None:
    redis_cluster.flush()
    replicas = [
        GatewayProcess(
            tmp_path / name,
            "grpc",
            core=core,
            MN_REDIS_URL=redis_cluster.url,
            MN_API_RATE_LIMIT="3/minute",
            MN_API_BUNDLE_DIR=str(tmp_path / name / "bundles"),
        )
        for name in ("a", "b")
    ]
    try:
        for gateway in replicas:
            gateway.tmp_path.mkdir()
            gateway.start()
        a, b = (g.base for g in replicas)
        async with httpx.AsyncClient(timeout=30) as client:
            uploaded = await client.post(
                f"{a}{API}/bundles/upload", files={"bundle": ("b.zip", BUNDLE)}
            )
            assert uploaded.status_code == 201, uploaded.text
            keyed = {"Idempotency-Key": "on-a-cluster"}
            first = await client.post(
                f"{b}{API}/jobs", json={"bundle_id": uploaded.json()["bundle_id"]}, headers=keyed
            )
            assert first.status_code == 201, first.text
            again = await client.post(
                f"{a}{API}/jobs", json={"bundle_id": uploaded.json()["bundle_id"]}, headers=keyed
            )
            assert again.headers["idempotent-replayed"] == "true"
            assert again.json()["job_id"] == first.json()["job_id"]
            # One window for both replicas: three requests were counted, the next waits.
            limited = await client.get(f"{b}{API}/jobs")
            assert limited.status_code == 429, limited.text
            assert limited.json()["error"] == "rate_limited"
    finally:
        for gateway in replicas:
            gateway.stop()
