"""mn-fake-core speaks the core's protocol: a plain gRPC client sees the core's quirks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import orjson
import pytest

from mn_api.adapters.grpc.protos import (
    cluster_pb2,
    cluster_pb2_grpc,
    job_pb2,
    job_pb2_grpc,
    observability_pb2,
    observability_pb2_grpc,
)
from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.entrypoints.fake_core import FakeCore
from tests.support import pipeline_manifest


@pytest.fixture
async def core() -> AsyncIterator[FakeCore]:
    core = FakeCore(InMemoryRuntime(step_seconds=0.001), token="core-secret")
    await core.start()
    yield core
    await core.stop(grace=None)


@pytest.fixture
async def channel(core: FakeCore) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{core.port}") as channel:
        yield channel


AUTH = (("authorization", "Bearer core-secret"),)


async def test_calls_without_the_token_are_unauthenticated(channel: grpc.aio.Channel) -> None:
    stub = cluster_pb2_grpc.ClusterServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetSystemSummary(cluster_pb2.GetSystemSummaryRequest())
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    stream = observability_pb2_grpc.ObservabilityServiceStub(channel).StreamEvents(
        observability_pb2.StreamEventsRequest(job_id="x"), metadata=(("authorization", "no"),)
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for _ in stream:
            pass
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_unknown_jobs_answer_an_empty_object(channel: grpc.aio.Channel) -> None:
    stub = job_pb2_grpc.JobServiceStub(channel)
    response = await stub.GetJob(job_pb2.GetJobRequest(job_id="nope"), metadata=AUTH)
    assert response.job_json == "{}"


async def test_bad_manifests_are_invalid_argument_listing_problems(
    channel: grpc.aio.Channel,
) -> None:
    stub = job_pb2_grpc.JobServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.SubmitJob(job_pb2.SubmitJobRequest(manifest_json='{"nodes": []}'), metadata=AUTH)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "graph_id is required" in raised.value.details()
    assert "nodes must be a non-empty list" in raised.value.details()


async def test_list_limit_zero_means_one_hundred(core: FakeCore, channel: grpc.aio.Channel) -> None:
    core.runtime.seed(120, 6)
    stub = job_pb2_grpc.JobServiceStub(channel)
    zero = await stub.ListJobs(
        job_pb2.ListJobsRequest(limit=0, include_terminal=True), metadata=AUTH
    )
    assert len(orjson.loads(zero.jobs_json)["data"]) == 100
    some = await stub.ListJobs(
        job_pb2.ListJobsRequest(limit=7, include_terminal=True), metadata=AUTH
    )
    assert len(orjson.loads(some.jobs_json)["data"]) == 7


async def test_forbidden_transitions_are_failed_precondition(channel: grpc.aio.Channel) -> None:
    stub = job_pb2_grpc.JobServiceStub(channel)
    ack = await stub.SubmitJob(
        job_pb2.SubmitJobRequest(
            manifest_json=orjson.dumps(pipeline_manifest()).decode(), payloads={"a.txt": b"1"}
        ),
        metadata=AUTH,
    )
    assert ack.status == "pending"
    await stub.CancelJob(job_pb2.CancelJobRequest(job_id=ack.job_id), metadata=AUTH)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.PauseJob(job_pb2.PauseJobRequest(job_id=ack.job_id), metadata=AUTH)
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.PauseJob(job_pb2.PauseJobRequest(job_id="ghost"), metadata=AUTH)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_clear_needs_the_admin_token(core: FakeCore, channel: grpc.aio.Channel) -> None:
    core.runtime.seed(2, 6)
    stub = job_pb2_grpc.JobServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.ClearJobs(job_pb2.ClearJobsRequest(admin_token="guess"), metadata=AUTH)
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    cleared = await stub.ClearJobs(
        job_pb2.ClearJobsRequest(admin_token="core-secret"), metadata=AUTH
    )
    assert cleared.cleared_count == 2


async def test_a_followed_stream_ends_with_the_job(channel: grpc.aio.Channel) -> None:
    jobs = job_pb2_grpc.JobServiceStub(channel)
    ack = await jobs.SubmitJob(
        job_pb2.SubmitJobRequest(manifest_json=orjson.dumps(pipeline_manifest()).decode()),
        metadata=AUTH,
    )
    stream = observability_pb2_grpc.ObservabilityServiceStub(channel).StreamEvents(
        observability_pb2.StreamEventsRequest(
            job_id=ack.job_id, follow=True, heartbeat_interval_ms=1000
        ),
        metadata=AUTH,
    )
    types = [orjson.loads(r.event_json)["type"] async for r in stream]
    assert types[0] == "job_pending" and types[-1] == "job_completed"


async def test_seeded_jobs_carry_their_histories(core: FakeCore, channel: grpc.aio.Channel) -> None:
    [job_id] = core.runtime.seed(1, 1000)
    stream = observability_pb2_grpc.ObservabilityServiceStub(channel).StreamEvents(
        observability_pb2.StreamEventsRequest(job_id=job_id), metadata=AUTH
    )
    count = 0
    async for _ in stream:
        count += 1
    assert count == 1000


async def test_legacy_core_has_no_replay_and_ignores_follow() -> None:
    core = FakeCore(InMemoryRuntime(step_seconds=0.001), legacy=True)
    await core.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{core.port}") as channel:
            daemon = {**pipeline_manifest(), "daemon": True}
            jobs = job_pb2_grpc.JobServiceStub(channel)
            ack = await jobs.SubmitJob(
                job_pb2.SubmitJobRequest(manifest_json=orjson.dumps(daemon).decode())
            )
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await jobs.ReplayDeadLetter(
                    job_pb2.ReplayDeadLetterRequest(job_id=ack.job_id, event_index=0)
                )
            assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
            stream = observability_pb2_grpc.ObservabilityServiceStub(channel).StreamEvents(
                observability_pb2.StreamEventsRequest(job_id=ack.job_id, follow=True)
            )
            events = [r async for r in stream]  # ends although the daemon job runs on
            assert events
    finally:
        await core.stop(grace=None)
