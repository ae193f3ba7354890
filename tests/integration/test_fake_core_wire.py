"""mn-fake-core speaks each release's protocol: a plain gRPC client sees that release's quirks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

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
from mn_api.entrypoints.fake_core import FakeCore, elixir_list
from tests.support import pipeline_manifest

TOKEN = "core-secret"
ADMIN = "admin-secret"
AUTH = (("authorization", f"Bearer {TOKEN}"),)
DAEMON = orjson.dumps({**pipeline_manifest(), "daemon": True}).decode()
GHOST = "ghost-1-000000000000"


class Stubs:
    def __init__(self, core: FakeCore, channel: grpc.aio.Channel) -> None:
        self.core = core
        self.jobs = job_pb2_grpc.JobServiceStub(channel)
        self.cluster = cluster_pb2_grpc.ClusterServiceStub(channel)
        self.events = observability_pb2_grpc.ObservabilityServiceStub(channel)

    async def submit(self, manifest_json: str = DAEMON) -> str:
        request = job_pb2.SubmitJobRequest(manifest_json=manifest_json)
        return (await self.jobs.SubmitJob(request)).job_id

    async def running(self, job_id: str) -> None:
        async with asyncio.timeout(5):
            while True:
                response = await self.jobs.GetJob(job_pb2.GetJobRequest(job_id=job_id))
                if orjson.loads(response.job_json)["job"]["status"] == "running":
                    return
                await asyncio.sleep(0.005)


@asynccontextmanager
async def serving(
    release: str, step_seconds: float = 0.002, **options: object
) -> AsyncIterator[Stubs]:
    runtime = InMemoryRuntime(release=release, step_seconds=step_seconds)
    core = FakeCore(runtime, **options)  # type: ignore[arg-type]
    await core.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{core.port}") as channel:
            yield Stubs(core, channel)
    finally:
        await core.stop(grace=None)


async def refusal(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call()  # type: ignore[misc]
    return raised.value.code(), raised.value.details() or ""


@pytest.mark.parametrize(
    ("release", "pending", "terminal", "unknown"),
    [
        ("1.1", "INTERNAL", "INTERNAL", "INTERNAL"),
        ("1.2.5", "INTERNAL", "INTERNAL", "INTERNAL"),
        ("1.2.31", "NOT_FOUND", None, "NOT_FOUND"),
    ],
)
async def test_refusals_carry_each_releases_code_and_text(
    release: str, pending: str, terminal: str | None, unknown: str
) -> None:
    # Slow steps: the job stays pending for this whole test.
    async with serving(release, step_seconds=30, token=TOKEN) as s:
        job_id = await s.submit()
        code, text = await refusal(
            lambda: s.jobs.PauseJob(job_pb2.PauseJobRequest(job_id=job_id), metadata=AUTH)
        )
        assert (code.name, text) == (pending, "job is not running")
        code, text = await refusal(lambda: s.jobs.CancelJob(job_pb2.CancelJobRequest(job_id=GHOST)))
        assert code.name == unknown and text == f"job {GHOST} was not found"
        await s.jobs.CancelJob(job_pb2.CancelJobRequest(job_id=job_id))
        if terminal is None:
            again = await s.jobs.CancelJob(job_pb2.CancelJobRequest(job_id=job_id))
            assert again.status == "cancelled" and again.version == 1
        else:
            code, text = await refusal(
                lambda: s.jobs.CancelJob(job_pb2.CancelJobRequest(job_id=job_id))
            )
            assert (code.name, text) == (terminal, "job is already in a terminal state")
        code, text = await refusal(
            lambda: s.jobs.ResumeJob(job_pb2.ResumeJobRequest(job_id=job_id), metadata=AUTH)
        )
        assert text == "job is not paused"
        assert code.name == ("FAILED_PRECONDITION" if release == "1.2.31" else "INTERNAL")


@pytest.mark.parametrize(("release", "answer"), [("1.2.5", "{}"), ("1.2.31", '{"version":1}')])
async def test_unknown_jobs_answer_a_document_without_a_job(release: str, answer: str) -> None:
    async with serving(release) as s:
        response = await s.jobs.GetJob(job_pb2.GetJobRequest(job_id="nope"))
        assert response.job_json == answer


async def test_bad_manifests_are_one_elixir_list_literal() -> None:
    async with serving("1.2.31") as s:
        code, text = await refusal(lambda: s.submit('{"nodes": []}'))
        assert code is grpc.StatusCode.INVALID_ARGUMENT
        assert text.startswith('["manifest_version is required", "graph_id is required", ')
        code, text = await refusal(lambda: s.submit("{nope"))
        assert text == 'unexpected byte at position 1: 0x6E ("n")'


def test_elixir_list_literals_escape_like_elixir() -> None:
    assert elixir_list(['a "b"', "c\\d", "#{x}"]) == '["a \\"b\\"", "c\\\\d", "\\#{x}"]'


async def test_requirements_beyond_the_node_are_failed_precondition() -> None:
    async with serving("1.2.31") as s:
        manifest = {**pipeline_manifest(), "requirements": {"memory": "64GB"}}
        code, text = await refusal(lambda: s.submit(orjson.dumps(manifest).decode()))
        assert code is grpc.StatusCode.FAILED_PRECONDITION
        assert text == "requirements_not_met: memory=65536 available=16384"


async def test_list_limit_of_zero_or_less_means_one_hundred() -> None:
    async with serving("1.2.5") as s:
        s.core.runtime.seed(120, 6)
        for limit in (0, -3):
            request = job_pb2.ListJobsRequest(limit=limit, include_terminal=True)
            listed = await s.jobs.ListJobs(request)
            assert len(orjson.loads(listed.jobs_json)["data"]) == 100
        listed = await s.jobs.ListJobs(job_pb2.ListJobsRequest(limit=7, include_terminal=False))
        assert orjson.loads(listed.jobs_json)["data"] == []


@pytest.mark.parametrize("release", ["1.2.5", "1.2.31"])
async def test_protected_rpcs_need_the_token_and_others_never(release: str) -> None:
    async with serving(release, token=TOKEN) as s:
        job_id = await s.submit()
        await s.running(job_id)
        code, _ = await refusal(lambda: s.jobs.PauseJob(job_pb2.PauseJobRequest(job_id=job_id)))
        assert code is grpc.StatusCode.UNAUTHENTICATED
        wrong = (("authorization", "Bearer guess"),)
        code, _ = await refusal(
            lambda: s.jobs.PauseJob(job_pb2.PauseJobRequest(job_id=job_id), metadata=wrong)
        )
        assert code is grpc.StatusCode.UNAUTHENTICATED
        bare = (("authorization", TOKEN),)  # the Bearer prefix is optional
        paused = await s.jobs.PauseJob(job_pb2.PauseJobRequest(job_id=job_id), metadata=bare)
        assert paused.status == "paused"
        # Submit, get, list, cancel, streams and the summary are never checked.
        await s.cluster.GetSystemSummary(cluster_pb2.GetSystemSummaryRequest())
        await s.jobs.CancelJob(job_pb2.CancelJobRequest(job_id=job_id))


async def test_a_core_without_a_token_refuses_every_protected_rpc() -> None:
    async with serving("1.2.5") as s:
        job_id = await s.submit()
        code, _ = await refusal(
            lambda: s.jobs.PauseJob(job_pb2.PauseJobRequest(job_id=job_id), metadata=AUTH)
        )
        assert code is grpc.StatusCode.UNAUTHENTICATED


async def test_1_1_checks_nothing_and_clears_with_an_empty_request() -> None:
    async with serving("1.1", token=TOKEN) as s:
        s.core.runtime.seed(2, 6)
        job_id = await s.submit()
        await s.running(job_id)
        assert (await s.jobs.PauseJob(job_pb2.PauseJobRequest(job_id=job_id))).status == "paused"
        assert (await s.jobs.ClearJobs(job_pb2.ClearJobsRequest())).cleared_count == 2
        code, _ = await refusal(lambda: s.jobs.CancelAllJobs(job_pb2.CancelAllJobsRequest()))
        assert code is grpc.StatusCode.UNIMPLEMENTED


async def test_1_2_5_clears_only_with_the_separate_admin_secret() -> None:
    async with serving("1.2.5", token=TOKEN, admin_token=ADMIN) as s:
        s.core.runtime.seed(2, 6)
        for secret in ("guess", TOKEN):
            code, _ = await refusal(
                lambda secret=secret: s.jobs.ClearJobs(
                    job_pb2.ClearJobsRequest(admin_token=secret), metadata=AUTH
                )
            )
            assert code is grpc.StatusCode.PERMISSION_DENIED
        cleared = await s.jobs.ClearJobs(job_pb2.ClearJobsRequest(admin_token=ADMIN))
        assert cleared.cleared_count == 2
    async with serving("1.2.5", token=TOKEN) as s:
        code, _ = await refusal(
            lambda: s.jobs.ClearJobs(job_pb2.ClearJobsRequest(admin_token=TOKEN))
        )
        assert code is grpc.StatusCode.PERMISSION_DENIED


async def test_1_2_31_clears_and_cancels_all_through_the_metadata() -> None:
    async with serving("1.2.31", token=TOKEN) as s:
        s.core.runtime.seed(2, 6)
        code, _ = await refusal(lambda: s.jobs.ClearJobs(job_pb2.ClearJobsRequest()))
        assert code is grpc.StatusCode.UNAUTHENTICATED
        cleared = await s.jobs.ClearJobs(job_pb2.ClearJobsRequest(), metadata=AUTH)
        assert (cleared.cleared_count, cleared.version) == (2, 1)
        job_id = await s.submit()
        result = await s.jobs.CancelAllJobs(job_pb2.CancelAllJobsRequest(), metadata=AUTH)
        answer = orjson.loads(result.result_json)
        # Run as a cancel_all_jobs operation: its id, the counts and each job's outcome.
        assert answer["operation_id"].startswith("op-") and len(answer["operation_id"]) == 19
        assert {k: v for k, v in answer.items() if k != "operation_id"} == {
            "cancelled_count": 1,
            "pending_count": 0,
            "failed_count": 0,
            "results": [{"job_id": job_id, "status": "cancelled"}],
            "version": 1,
        }


async def test_remove_node_acknowledges_the_simulated_node() -> None:
    async with serving("1.1") as s:
        summary = orjson.loads(
            (await s.cluster.GetSystemSummary(cluster_pb2.GetSystemSummaryRequest())).summary_json
        )
        name = summary["nodes"][0]["name"]
        removed = await s.cluster.RemoveNode(cluster_pb2.RemoveNodeRequest(node_name=name))
        assert (removed.node_name, removed.status) == (name, "removed")
        code, _ = await refusal(
            lambda: s.cluster.RemoveNode(cluster_pb2.RemoveNodeRequest(node_name="elsewhere"))
        )
        assert code is grpc.StatusCode.NOT_FOUND


async def _stream(s: Stubs, **request: object) -> list[dict]:
    call = s.events.StreamEvents(observability_pb2.StreamEventsRequest(**request))  # type: ignore[arg-type]
    async with asyncio.timeout(10):
        return [orjson.loads(r.event_json) async for r in call]


async def test_1_1_sends_the_history_and_ends_whatever_was_asked() -> None:
    async with serving("1.1") as s:
        job_id = await s.submit()
        await s.running(job_id)
        events = await _stream(s, job_id=job_id, follow=True, heartbeat_interval_ms=10)
        assert events and all(e["type"] != "stream_heartbeat" for e in events)
        assert await _stream(s, job_id=GHOST, follow=True) == []


async def test_following_streams_send_heartbeats_and_end_with_the_job() -> None:
    async with serving("1.2.5") as s:
        manifest = pipeline_manifest(worker={"simulate": {"delay_ms": 200}})
        job_id = await s.submit(orjson.dumps(manifest).decode())
        events = await _stream(s, job_id=job_id, follow=True, heartbeat_interval_ms=20)
        beats = [e for e in events if e["type"] == "stream_heartbeat"]
        assert beats and all(set(b) == {"type", "job_id", "timestamp"} for b in beats)
        real = [e for e in events if e["type"] != "stream_heartbeat"]
        assert real[0]["type"] == "job_pending" and real[-1]["type"] == "job_completed"
        # A finished job's history holds its end: the stream ends at once.
        assert (await _stream(s, job_id=job_id, follow=True))[-1]["type"] == "job_completed"


async def test_an_unknown_job_with_follow_gets_heartbeats_never_an_error() -> None:
    async with serving("1.2.31") as s:
        call = s.events.StreamEvents(
            observability_pb2.StreamEventsRequest(
                job_id=GHOST, follow=True, heartbeat_interval_ms=10
            )
        )
        beats = []
        async with asyncio.timeout(5):
            async for response in call:
                beats.append(orjson.loads(response.event_json))
                if len(beats) == 3:
                    break
        call.cancel()
        assert {b["type"] for b in beats} == {"stream_heartbeat"}
        assert all(b["job_id"] == GHOST and b["version"] == 1 for b in beats)


async def test_the_tail_limit_is_honoured_from_1_2_31_only() -> None:
    for release, expected in (("1.2.5", 1000), ("1.2.31", 10)):
        async with serving(release) as s:
            [job_id] = s.core.runtime.seed(1, 1000)
            events = await _stream(s, job_id=job_id, limit=10)
            assert len(events) == expected
            assert events[-1]["type"] == "job_completed"


async def test_the_boundary_duplicate_is_reproducible() -> None:
    async with serving("1.2.31") as s:
        manifest = pipeline_manifest(worker={"simulate": {"delay_ms": 300}})
        manifest["metadata"] = {"simulate": {"duplicate_boundary": True}}
        job_id = await s.submit(orjson.dumps(manifest).decode())
        await s.running(job_id)
        events = await _stream(s, job_id=job_id, follow=True)
        raw = [orjson.dumps(e) for e in events]
        repeated = [r for r in set(raw) if raw.count(r) > 1]
        assert len(raw) - len(set(raw)) == 1 and len(repeated) == 1
        first = raw.index(repeated[0])
        assert raw[first + 1] == repeated[0]  # once at the end of the history, once live


async def test_replay_is_ours_in_every_profile_unless_left_out() -> None:
    async with serving("1.1", replay=False) as s:
        job_id = await s.submit()
        code, _ = await refusal(
            lambda: s.jobs.ReplayDeadLetter(
                job_pb2.ReplayDeadLetterRequest(job_id=job_id, event_index=0)
            )
        )
        assert code is grpc.StatusCode.UNIMPLEMENTED
    async with serving("1.1") as s:
        job_id = await s.submit()
        code, _ = await refusal(
            lambda: s.jobs.ReplayDeadLetter(
                job_pb2.ReplayDeadLetterRequest(job_id=job_id, event_index=0)
            )
        )
        assert code is grpc.StatusCode.INVALID_ARGUMENT  # event 0 is no dead letter


async def test_seeded_jobs_carry_their_histories() -> None:
    async with serving("1.2.31") as s:
        [job_id] = s.core.runtime.seed(1, 1000)
        assert len(await _stream(s, job_id=job_id)) == 1000
