"""The RuntimePort contract: one suite, run against every implementation of the port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson
import pytest
from redis.asyncio import Redis

from mn_api.adapters.grpc.runtime import GrpcRuntime
from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.application.ports import RuntimePort
from mn_api.domain.status import is_terminal
from mn_api.entrypoints.fake_core import FakeCore


@dataclass(frozen=True)
class Capabilities:
    """What an implementation can do; a legacy core lacks some of it."""

    replay: bool = True
    # Whether the runtime itself holds a stream open; the gateway follows either way.
    follow: bool = True


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    """A client of the session's Redis (emptied for each test) for the store contracts."""
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def memory_runtime_live() -> AsyncIterator[InMemoryRuntime]:
    runtime = InMemoryRuntime(step_seconds=0.002)
    await runtime.start()
    yield runtime
    await runtime.close()


async def _grpc_runtime(*, legacy: bool) -> AsyncIterator[RuntimePort]:
    core = FakeCore(InMemoryRuntime(step_seconds=0.002), legacy=legacy)
    port = await core.start("127.0.0.1", 0)
    runtime = GrpcRuntime(f"127.0.0.1:{port}", timeout_seconds=5, legacy_poll_seconds=0.02)
    await runtime.start()
    yield runtime
    await runtime.close()
    await core.stop(grace=None)


@pytest.fixture
async def grpc_fake_core() -> AsyncIterator[RuntimePort]:
    """GrpcRuntime talking to mn-fake-core over a real loopback connection."""
    async for runtime in _grpc_runtime(legacy=False):
        yield runtime


@pytest.fixture
async def grpc_legacy_core() -> AsyncIterator[RuntimePort]:
    """GrpcRuntime talking to a fake core that behaves like a released core."""
    async for runtime in _grpc_runtime(legacy=True):
        yield runtime


RUNTIMES = ["memory_runtime_live", "grpc_fake_core", "grpc_legacy_core"]


@pytest.fixture(params=RUNTIMES)
def runtime_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def runtime(request: pytest.FixtureRequest, runtime_name: str) -> RuntimePort:
    return request.getfixturevalue(runtime_name)


@pytest.fixture
def capabilities(runtime_name: str) -> Capabilities:
    if runtime_name == "grpc_legacy_core":
        return Capabilities(replay=False, follow=False)
    return Capabilities()


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
