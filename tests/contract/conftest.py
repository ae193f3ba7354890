"""The RuntimePort contract: one suite, run against every implementation of the port."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

import orjson
import pytest

from mn_api.adapters.grpc.runtime import GrpcRuntime
from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.adapters.redis_client import RedisClient, close, connect
from mn_api.application.ports import RuntimePort
from mn_api.config import Settings
from mn_api.domain.status import is_terminal
from mn_api.entrypoints.fake_core import FakeCore
from tests.support import (
    CORE_ADMIN_TOKEN,
    CORE_TOKEN,
    RedisClusterServers,
    RedisSentinelGroup,
)
from tests.support.realcore import RealCore


@dataclass(frozen=True)
class Capabilities:
    """What a release does, as CORE.md tells it (written here, not read from the product)."""

    release: str
    replay: bool = True
    # Whether the core itself holds a stream open; the gateway's adapter follows either way.
    follow: bool = True
    job_id: re.Pattern[str] = re.compile(r"^pipeline-\d{13}-[0-9a-f]{12}$")
    resume_of_running_succeeds: bool = False
    cancel_of_terminal_succeeds: bool = False
    cancellation_pending: bool = False
    force_cancelled: bool = True
    recent_events: bool = True
    result_in_details: bool = True
    dead_letter_reason: bool = False
    summary_metrics: bool = False
    requirements: bool = False
    event_version: bool = False


CAPABILITIES = {
    "1.1": Capabilities("1.1", follow=False),
    "1.2.5": Capabilities("1.2.5"),
    "1.2.31": Capabilities(
        "1.2.31",
        job_id=re.compile(r"^p-[0-9a-f]{8}$"),
        resume_of_running_succeeds=True,
        cancel_of_terminal_succeeds=True,
        cancellation_pending=True,
        force_cancelled=False,
        recent_events=False,
        result_in_details=False,
        dead_letter_reason=True,
        summary_metrics=True,
        requirements=True,
        event_version=True,
    ),
}


# Every Redis deployment the shared stores support, each emptied for the test using it:
# `redis_settings(request, kind)` names it as the gateway's settings would, and
# `redis_client(request, kind)` is a client built as the gateway builds its own.
REDIS_KINDS = ["redis-server", "redis-cluster", "redis-sentinel"]


def redis_settings(request: pytest.FixtureRequest, kind: str) -> Settings:
    return request.getfixturevalue(kind.replace("-", "_") + "_settings")


def redis_client(request: pytest.FixtureRequest, kind: str) -> RedisClient:
    return request.getfixturevalue(kind.replace("-", "_") + "_client")


def replicas_of(kind: str) -> int:
    """What the gateway waits for on each acknowledged write: the replica behind Sentinel."""
    return 1 if kind == "redis-sentinel" else 0


@pytest.fixture
def redis_server_settings(redis_url: str) -> Settings:
    return Settings(redis_url=redis_url)


@pytest.fixture
def redis_cluster_settings(redis_cluster: RedisClusterServers) -> Settings:
    redis_cluster.flush()
    return Settings(redis_url=redis_cluster.url)


@pytest.fixture
def redis_sentinel_settings(redis_sentinels: RedisSentinelGroup) -> Settings:
    redis_sentinels.flush()
    return Settings(
        redis_sentinels_raw=redis_sentinels.sentinels,
        redis_sentinel_master=redis_sentinels.master,
    )


async def _client_of(settings: Settings) -> AsyncIterator[RedisClient]:
    assert settings.redis is not None
    client = connect(settings.redis)
    yield client
    await close(client)


@pytest.fixture
async def redis_server_client(redis_server_settings: Settings) -> AsyncIterator[RedisClient]:
    async for client in _client_of(redis_server_settings):
        yield client


@pytest.fixture
async def redis_cluster_client(redis_cluster_settings: Settings) -> AsyncIterator[RedisClient]:
    async for client in _client_of(redis_cluster_settings):
        yield client


@pytest.fixture
async def redis_sentinel_client(
    redis_sentinel_settings: Settings,
) -> AsyncIterator[RedisClient]:
    async for client in _client_of(redis_sentinel_settings):
        yield client


# memory-<release> runs the runtime in process; grpc-<release> reaches it through
# mn-fake-core with GrpcRuntime; the last runs without our ReplayDeadLetter extension.
RUNTIMES = [
    *(f"memory-{r}" for r in CAPABILITIES),
    *(f"grpc-{r}" for r in CAPABILITIES),
    "grpc-1.2.31-without-replay",
]


@pytest.fixture(params=RUNTIMES)
def runtime_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def capabilities(runtime_name: str) -> Capabilities:
    kind, release, *rest = runtime_name.split("-")
    known = CAPABILITIES[release]
    if kind == "memory":
        # In process there is no wire: the runtime follows and replays in every profile.
        return replace(known, follow=True)
    return replace(known, replay=not rest)


@pytest.fixture
async def runtime(runtime_name: str) -> AsyncIterator[RuntimePort]:
    kind, release, *rest = runtime_name.split("-")
    memory = InMemoryRuntime(release=release, step_seconds=0.002)
    if kind == "memory":
        await memory.start()
        yield memory
        await memory.close()
        return
    core = FakeCore(memory, replay=not rest, token=CORE_TOKEN, admin_token=CORE_ADMIN_TOKEN)
    port = await core.start("127.0.0.1", 0)
    runtime = GrpcRuntime(
        f"127.0.0.1:{port}",
        timeout_seconds=5,
        legacy_poll_seconds=0.02,
        auth_token=CORE_TOKEN,
        admin_token=CORE_ADMIN_TOKEN,
    )
    await runtime.start()
    yield runtime
    await runtime.close()
    await core.stop(grace=None)


async def submit(runtime: RuntimePort, manifest: dict, payloads: dict | None = None) -> str:
    ack = await runtime.submit_job(orjson.dumps(manifest).decode(), payloads or {})
    return ack.job_id


async def job_status(runtime: RuntimePort, job_id: str) -> str:
    return (await runtime.get_job(job_id)).value["job"]["status"]


async def wait_for_status(
    runtime: RuntimePort, job_id: str, wanted: set[str] | None = None, within: float = 10.0
) -> str:
    """Poll until the job reaches one of `wanted` (default: any terminal status)."""
    async with asyncio.timeout(within):
        while True:
            status = await job_status(runtime, job_id)
            if (wanted is None and is_terminal(status)) or (wanted and status in wanted):
                return status
            await asyncio.sleep(0.005)


async def event_types(runtime: RuntimePort, job_id: str) -> list[str]:
    return [
        item.type
        async for item in runtime.stream_events(job_id, follow=False)
        if hasattr(item, "type")
    ]


@asynccontextmanager
async def generation_a(kind: str, core: RealCore | None = None) -> AsyncIterator[RuntimePort]:
    """A runtime of wire generation A: `real` (the given real core through GrpcRuntime),
    `memory` (the `d26bef71` profile in process) or `grpc` (that profile behind
    mn-fake-core, reached as the real core is)."""
    if kind == "real":
        assert core is not None
        real = GrpcRuntime(core.target, timeout_seconds=10, legacy_poll_seconds=0.05)
        yield real
        await real.close()
        return
    memory = InMemoryRuntime(release="d26bef71", step_seconds=0.002)
    await memory.start()
    if kind == "memory":
        yield memory
    else:
        fake = FakeCore(memory)
        port = await fake.start("127.0.0.1", 0)
        runtime = GrpcRuntime(f"127.0.0.1:{port}", timeout_seconds=5, legacy_poll_seconds=0.02)
        yield runtime
        await runtime.close()
        await fake.stop(grace=None)
    await memory.close()
