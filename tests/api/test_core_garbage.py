"""What a core answers that is not JSON never reaches a client as JSON, nor becomes a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import httpx
import pytest

from mn_api.adapters.grpc.protos import (
    cluster_pb2,
    cluster_pb2_grpc,
    job_pb2,
    job_pb2_grpc,
    observability_pb2,
    observability_pb2_grpc,
)
from mn_api.adapters.grpc.runtime import GrpcRuntime
from mn_api.config import Settings
from tests.support import asgi_client, scripted_core

GARBAGE = "<html>502 Bad Gateway</html>"
JOB = '{"job": {"job_id": "j-1", "status": "running"}, "agents": []}'


class GarbageCore(
    job_pb2_grpc.JobServiceServicer,
    cluster_pb2_grpc.ClusterServiceServicer,
    observability_pb2_grpc.ObservabilityServiceServicer,
):
    """A core (or something in front of it) answering text that is not JSON."""

    def __init__(self) -> None:
        self.job = GARBAGE

    async def GetJob(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return job_pb2.GetJobResponse(job_json=self.job + " " * 300)  # large: relayed unread

    async def ListJobs(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return job_pb2.ListJobsResponse(jobs_json=GARBAGE)

    async def GetSystemSummary(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return cluster_pb2.GetSystemSummaryResponse(summary_json=GARBAGE)

    async def StreamEvents(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        yield observability_pb2.EventResponse(event_json='{"type": "job_pending"}')
        yield observability_pb2.EventResponse(event_json=GARBAGE)


@pytest.fixture
async def garbage() -> AsyncIterator[tuple[GarbageCore, GrpcRuntime]]:
    servicer = GarbageCore()
    async with scripted_core(
        servicer,
        job_pb2_grpc.add_JobServiceServicer_to_server,
        cluster_pb2_grpc.add_ClusterServiceServicer_to_server,
        observability_pb2_grpc.add_ObservabilityServiceServicer_to_server,
    ) as runtime:
        yield servicer, runtime


@pytest.mark.parametrize("history_cache_mb", [64, 0])
async def test_unreadable_answers_are_502_runtime_protocol_error(
    garbage: tuple[GarbageCore, GrpcRuntime],
    settings_factory: Callable[..., Settings],
    history_cache_mb: int,
) -> None:
    servicer, runtime = garbage
    settings = settings_factory(runtime="grpc", history_cache_mb=history_cache_mb)
    async with asgi_client(settings, runtime, lifespan=True) as client:
        for path in ("/jobs", "/jobs/j-1", "/system/summary"):
            response = await client.get(f"/api/v1{path}")
            assert response.status_code == 502, (path, response.text)
            assert response.json()["error"] == "runtime_protocol_error"
            assert GARBAGE not in response.text
        servicer.job = JOB
        for path in ("/jobs/j-1/events", "/jobs/j-1/graph", "/jobs/j-1/dead-letters"):
            if history_cache_mb == 0 and path == "/jobs/j-1/events":
                # Streamed as the runtime sends it: begun before the bad event came, the
                # answer is cut short rather than finished as if it were whole.
                # (a server drops the connection; the in-process transport asserts instead)
                with pytest.raises((httpx.HTTPError, AssertionError)):
                    await client.get(f"/api/v1{path}")
                continue
            response = await client.get(f"/api/v1{path}")
            assert response.status_code == 502, (path, response.text)
            assert response.json()["error"] == "runtime_protocol_error"


@pytest.fixture
async def undecodable() -> AsyncIterator[GrpcRuntime]:
    """A core (or something in front of it) answering bytes that are no message of the
    call's type, or a message whose text field is not UTF-8."""

    async def not_a_message(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return b"\xff\xff\xff\xff"

    async def not_utf8(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return b"\x0a\x02\xff\xfe"  # field 1, the document, as bytes that are not UTF-8

    async def stream(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        yield b"\x0a\x02\xff\xfe"

    def unary(behaviour: Callable[..., Any]) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(behaviour)

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "mirrorneuron.job.v1.JobService",
                {"GetJob": unary(not_a_message), "ListJobs": unary(not_utf8)},
            ),
            grpc.method_handlers_generic_handler(
                "mirrorneuron.cluster.v1.ClusterService", {"GetSystemSummary": unary(not_utf8)}
            ),
            grpc.method_handlers_generic_handler(
                "mirrorneuron.observability.v1.ObservabilityService",
                {"StreamEvents": grpc.unary_stream_rpc_method_handler(stream)},
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield GrpcRuntime(f"127.0.0.1:{port}")
    finally:
        await server.stop(None)


async def test_answers_that_are_no_message_are_502_runtime_protocol_error(
    undecodable: GrpcRuntime, settings_factory: Callable[..., Settings]
) -> None:
    settings = settings_factory(runtime="grpc")
    async with asgi_client(settings, undecodable, lifespan=True) as client:
        for path in ("/jobs", "/jobs/j-1", "/system/summary", "/jobs/j-1/events", "/nodes"):
            response = await client.get(f"/api/v1{path}")
            assert response.status_code == 502, (path, response.text)
            assert response.json()["error"] == "runtime_protocol_error"
        doctor = await client.get("/api/v1/runtime/doctor")
        assert doctor.status_code == 200 and doctor.json()["status"] == "degraded"
