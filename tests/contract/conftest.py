"""The RuntimePort contract: one suite, run against every implementation of the port."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import orjson
import pytest
from redis.asyncio import Redis

from mn_api.adapters.grpc.runtime import GrpcRuntime
from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.application.ports import RuntimePort
from mn_api.domain.status import is_terminal
from mn_api.entrypoints.fake_core import FakeCore
from tests.support import CORE_ADMIN_TOKEN, CORE_TOKEN


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


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    """A client of the session's Redis (emptied for each test) for the store contracts."""
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


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
