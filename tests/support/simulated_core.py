"""The simulated core's later services, called as a test calls them: a JobService RPC
straight on the runtime's groups, or the whole runtime served by mn-fake-core over gRPC."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from mn_api.adapters.grpc.runtime import GrpcRuntime
from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.adapters.memory.services import CoreRefusal
from mn_api.adapters.memory.services._base import JOB_V1
from mn_api.entrypoints.fake_core import FakeCore
from tests.support.fixtures import pipeline_manifest
from tests.support.processes import CORE_TOKEN


async def job_call(runtime: InMemoryRuntime, rpc: str, **fields: Any) -> Any:
    """The first JobService's `rpc` answered (version 1): its `result_json`, read."""
    answer = await runtime.services.call(JOB_V1 + rpc, fields)
    assert answer["version"] == 1
    return json.loads(answer["result_json"])


async def job_refusal(runtime: InMemoryRuntime, rpc: str, **fields: Any) -> tuple[str, str]:
    """The first JobService's `rpc` refused: the gRPC status's name and the core's text."""
    with pytest.raises(CoreRefusal) as refused:
        await runtime.services.call(JOB_V1 + rpc, fields)
    return refused.value.code, refused.value.message


@asynccontextmanager
async def over_fake_core(runtime: InMemoryRuntime) -> AsyncIterator[GrpcRuntime]:
    """`runtime` served by mn-fake-core on loopback, reached by GrpcRuntime with the
    core's token."""
    core = FakeCore(runtime, token=CORE_TOKEN)
    port = await core.start("127.0.0.1", 0)
    remote = GrpcRuntime(f"127.0.0.1:{port}", timeout_seconds=5, auth_token=CORE_TOKEN)
    try:
        yield remote
    finally:
        await remote.close()
        await core.stop(grace=None)


@asynccontextmanager
async def running_runtime() -> AsyncIterator[InMemoryRuntime]:
    """A 1.2.31 runtime that runs its jobs by itself, a millisecond a step."""
    runtime = InMemoryRuntime(release="1.2.31", step_seconds=0.001)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.close()


def service_manifest(**node_config: dict[str, Any]) -> dict[str, Any]:
    """The three-step pipeline run until it is stopped (a daemon: the core's `service`
    kind), each node's config as `node_config` names it."""
    return {**pipeline_manifest(**node_config), "daemon": True}
