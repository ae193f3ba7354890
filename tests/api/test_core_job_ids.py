"""A core's job id reaches a Location header only when the job routes would accept it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest

from mn_api.adapters.grpc.protos import job_pb2, job_pb2_grpc
from mn_api.adapters.grpc.runtime import GrpcRuntime
from mn_api.config import Settings
from tests.support import asgi_client, pipeline_manifest, scripted_core


class ScriptedIds(job_pb2_grpc.JobServiceServicer):
    """Accepts every submission and answers the job id it was told to."""

    job_id = "pipeline-1-abc"

    async def SubmitJob(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return job_pb2.SubmitJobResponse(job_id=self.job_id, status="pending")


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[ScriptedIds, GrpcRuntime]]:
    servicer = ScriptedIds()
    async with scripted_core(servicer, job_pb2_grpc.add_JobServiceServicer_to_server) as runtime:
        yield servicer, runtime


@pytest.mark.parametrize(
    ("job_id", "located"),
    [
        ("pipeline-1-abc", True),
        ("a\r\nX-Injected: 1", False),
        ("trailing-newline\n", False),
        ("x" * 200_000, False),
        ("spaces are not routable", False),
    ],
    ids=["plain", "crlf", "trailing-lf", "200k", "spaces"],
)
async def test_the_job_is_reported_and_located_only_where_a_route_would_take_it(
    scripted: tuple[ScriptedIds, GrpcRuntime],
    settings_factory: Callable[..., Settings],
    job_id: str,
    located: bool,
) -> None:
    servicer, runtime = scripted
    servicer.job_id = job_id
    settings = settings_factory(runtime="grpc")
    async with asgi_client(settings, runtime, lifespan=True) as client:
        response = await client.post("/api/v1/jobs", json={"manifest": pipeline_manifest()})
    assert response.status_code == 201
    assert response.json()["job_id"] == job_id  # the job started: the answer says so
    assert ("location" in response.headers) is located
    assert "x-injected" not in response.headers
    if located:
        assert response.headers["location"] == f"/api/v1/jobs/{job_id}"
