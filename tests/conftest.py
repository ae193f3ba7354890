"""Fixtures shared by every suite."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from dependency_injector import providers
from fastapi import FastAPI

from mn_api.adapters.grpc.runtime import GrpcRuntime
from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.application.ports import RuntimePort
from mn_api.config import Settings
from mn_api.container import Container, build_container
from mn_api.entrypoints.fake_core import FakeCore
from mn_api.entrypoints.http import create_app
from tests.support import (
    CORE_ADMIN_TOKEN,
    CORE_TOKEN,
    FakeClock,
    RedisClusterServers,
    RedisSentinelGroup,
    RedisServer,
)
from tests.support.realcore import RealCore, release_archive


def needs_redis_server() -> None:
    if not RedisServer.available():
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed; `make test` installs it")
        pytest.skip("redis-server is not installed (make test installs it)")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One private Redis for the session; `make test` installs redis-server when missing."""
    needs_redis_server()
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def real_core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCore]:
    """The real core (../shared/realcore) with its own Redis, for the session."""
    needs_redis_server()
    if release_archive() is None:
        if os.environ.get("CI"):
            pytest.fail("the real core's release is missing from ../shared/realcore")
        pytest.skip("the real core's release is not in ../shared/realcore")
    core = RealCore(tmp_path_factory.mktemp("real-core")).start()
    yield core
    core.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    """A three-primary Redis Cluster for the session."""
    needs_redis_server()
    cluster = RedisClusterServers(tmp_path_factory.mktemp("redis-cluster")).start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def redis_sentinels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisSentinelGroup]:
    """A primary, its replica and three sentinels for the session (never failed over:
    the failover test starts its own)."""
    needs_redis_server()
    group = RedisSentinelGroup(tmp_path_factory.mktemp("redis-sentinel")).start()
    yield group
    group.stop()


@pytest.fixture
async def redis_url(redis_server: RedisServer) -> AsyncIterator[str]:
    """The session's Redis, emptied before each test that uses it."""
    from redis.asyncio import Redis

    client = Redis.from_url(redis_server.url)
    await client.flushall()
    await client.aclose()
    yield redis_server.url


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def memory_runtime(clock: FakeClock) -> InMemoryRuntime:
    """Stepped by the test itself: nothing moves until it calls step() or run_until_idle()."""
    return InMemoryRuntime(auto_run=False, clock=clock)


@pytest.fixture
def settings_factory(tmp_path: Path) -> Callable[..., Settings]:
    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "runtime": "memory",
            "bundle_dir": tmp_path / "bundles",
            "log_path": str(tmp_path / "logs" / "api.log"),
        }
        values.update(overrides)
        return Settings(**values)

    return build


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory()


@pytest.fixture(params=["memory", "grpc"])
async def gateway_runtime(
    request: pytest.FixtureRequest, memory_runtime: InMemoryRuntime
) -> AsyncIterator[RuntimePort]:
    """The runtime the HTTP tests go through: the memory runtime itself, or the same
    runtime behind mn-fake-core reached by GrpcRuntime over loopback."""
    if request.param == "memory":
        yield memory_runtime
        return
    core = FakeCore(memory_runtime, token=CORE_TOKEN, admin_token=CORE_ADMIN_TOKEN)
    port = await core.start("127.0.0.1", 0)
    runtime = GrpcRuntime(
        f"127.0.0.1:{port}",
        timeout_seconds=5,
        auth_token=CORE_TOKEN,
        admin_token=CORE_ADMIN_TOKEN,
    )
    yield runtime
    await runtime.close()
    await core.stop(grace=None)


@pytest.fixture
def container(settings: Settings, gateway_runtime: RuntimePort) -> Container:
    container = build_container(settings)
    container.core.override(providers.Object(gateway_runtime))
    return container


@pytest.fixture
def app(container: Container) -> FastAPI:
    return create_app(container)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
        ) as client,
    ):
        yield client
