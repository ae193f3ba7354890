"""A real mn-fake-core process that goes away, comes back and hangs."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from mn_api.config import Settings
from tests.integration.test_gateway_over_grpc import gateway
from tests.support import FakeCoreProcess, free_port

API = "/api/v1"
pytestmark = pytest.mark.slow


@pytest.fixture
def core() -> Iterator[FakeCoreProcess]:
    process = FakeCoreProcess(free_port(), "--step-ms", "1").start()
    yield process
    if process.process is not None:
        process.signal(signal.SIGCONT)
    process.stop()


@pytest.fixture
def settings_for(settings_factory: Callable) -> Callable[[FakeCoreProcess], Settings]:
    def build(core: FakeCoreProcess) -> Settings:
        return settings_factory(
            runtime="grpc",
            grpc_target_raw=f"127.0.0.1:{core.port}",
            grpc_timeout_seconds=2,
            ready_timeout_seconds=0.5,
        )

    return build


async def _until_ok(client: httpx.AsyncClient, path: str, within: float = 15) -> httpx.Response:
    deadline = time.monotonic() + within
    while True:
        response = await client.get(path)
        if response.status_code == 200 or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.1)


async def test_core_down_then_back(core: FakeCoreProcess, settings_for: Callable) -> None:
    async with gateway(settings_for(core)) as client:
        assert (await client.get(f"{API}/jobs")).status_code == 200
        assert core.stop() == 0  # the fake core itself stops cleanly on SIGTERM

        started = time.monotonic()
        down = await client.get(f"{API}/jobs")
        elapsed = time.monotonic() - started
        assert down.status_code == 503
        assert down.json()["error"] == "runtime_unavailable"
        assert down.headers["retry-after"]
        assert elapsed < 2  # refused connections are answered before the call deadline
        assert (await client.get(f"{API}/health")).status_code == 200
        assert (await client.get(f"{API}/ready")).status_code == 503

        core.start()
        assert (await _until_ok(client, f"{API}/jobs")).status_code == 200
        assert (await client.get(f"{API}/ready")).status_code == 200


async def test_core_hanging_then_thawed(core: FakeCoreProcess, settings_for: Callable) -> None:
    async with gateway(settings_for(core)) as client:
        assert (await client.get(f"{API}/jobs")).status_code == 200
        core.signal(signal.SIGSTOP)
        try:
            hung = await client.get(f"{API}/jobs")
            assert hung.status_code == 504
            assert hung.json()["error"] == "runtime_timeout"
            assert (await client.get(f"{API}/ready")).status_code == 503
            assert (await client.get(f"{API}/health")).status_code == 200
        finally:
            core.signal(signal.SIGCONT)
        assert (await _until_ok(client, f"{API}/jobs")).status_code == 200
