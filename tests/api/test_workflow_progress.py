"""The workflow-progress document and its live stream (what Web UI 1.2.5 draws a job from),
on the memory runtime and on the gRPC runtime in front of the fake core."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

import httpx
import orjson
import pytest
from dependency_injector import providers

from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.application.use_cases import WorkflowProgress
from mn_api.config import Settings
from mn_api.container import Container, build_container
from mn_api.domain.events import Heartbeat
from mn_api.entrypoints.http import create_app
from tests.contract.test_real_core_http import _fan_out
from tests.support import FakeClock, check_problem, pipeline_manifest

API = "/api/v1"


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    # Heartbeats of the progress stream come at most every 5 s, or as often as these.
    return settings_factory(sse_heartbeat_seconds=0.2)


async def _submit(client: httpx.AsyncClient, manifest: dict[str, Any] | None = None) -> str:
    answer = await client.post(f"{API}/jobs", json={"manifest": manifest or pipeline_manifest()})
    assert answer.status_code == 201, answer.text
    return answer.json()["job_id"]


class Stream:
    """One viewer following a job's progress through the use case the stream route serves:
    the snapshots and heartbeats it got, as they come. (httpx's ASGI transport hands over a
    response only once it is whole: the route itself is driven over a real server in
    tests/integration/test_event_streams.py.)"""

    def __init__(self, progress: WorkflowProgress, job_id: str) -> None:
        self.progress = progress
        self.job_id = job_id
        self.events: list[tuple[str, Any]] = []
        self.ended = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Stream:
        feed = await self.progress.follow(self.job_id)
        self._task = asyncio.create_task(self._read(feed))
        await self.next_snapshot(lambda _s: True)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _read(self, feed: AsyncIterator[Any]) -> None:
        async with aclosing(feed):  # type: ignore[type-var]
            async for item in feed:
                if isinstance(item, Heartbeat):
                    self.events.append(("heartbeat", None))
                else:
                    self.events.append(("snapshot", orjson.loads(item.json)))
        self.ended.set()

    async def next_event(self, kind: str) -> int:
        """Wait for an event of `kind`; how many have come."""
        async with asyncio.timeout(10):
            while not (count := sum(1 for k, _ in self.events if k == kind)):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        return count

    def snapshots(self) -> list[dict[str, Any]]:
        return [data for kind, data in self.events if kind == "snapshot"]

    async def next_snapshot(self, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        async with asyncio.timeout(10):
            while True:
                found = [s for s in self.snapshots() if wanted(s)]
                if found:
                    return found[-1]
                await asyncio.sleep(0.01)


def _statuses(snapshot: dict[str, Any]) -> dict[str, str]:
    return {agent["id"]: agent["status"] for agent in snapshot["agents"]}


async def test_a_finished_job_shows_every_agent_done_with_what_it_did(
    client: httpx.AsyncClient, memory_runtime: InMemoryRuntime
) -> None:
    job_id = await _submit(client)
    memory_runtime.run_until_idle()
    answer = await client.get(f"{API}/jobs/{job_id}/workflow-progress")
    assert answer.status_code == 200, answer.text
    progress = answer.json()
    assert progress["job_id"] == job_id and progress["status"] == "completed"
    assert progress["workflow_id"] == "pipeline"
    assert progress["agent_count"] == {
        "done": 3, "running": 0, "idle": 0, "ready": 0, "failed": 0, "total": 3
    }  # fmt: skip
    assert [s["id"] for s in progress["steps"]] == ["router", "worker", "collect"]
    assert [s["layer"] for s in progress["steps"]] == [0, 1, 2]
    assert progress["layers"] == [["router"], ["worker"], ["collect"]]
    assert {a["id"]: a["role"] for a in progress["agents"]} == {
        "router": "router", "worker": "executor", "collect": "aggregator"
    }  # fmt: skip
    assert all(a["items_done"] == 1 and a["progress"] == 100 for a in progress["agents"])
    assert {(e["from"], e["to"]) for e in progress["edges"]} == {
        ("router", "worker"), ("worker", "collect")
    }  # fmt: skip
    history = (await client.get(f"{API}/jobs/{job_id}/events")).json()
    assert progress["sequence"] == len(history["data"])
    assert progress["recent_events"][-1]["type"] == "job_completed"
    assert "failure" not in progress and None not in progress.values()


async def test_a_failed_job_names_the_agent_it_failed_in(
    client: httpx.AsyncClient, memory_runtime: InMemoryRuntime
) -> None:
    job_id = await _submit(client, pipeline_manifest(worker={"simulate": {"fail": True}}))
    memory_runtime.run_until_idle()
    progress = (await client.get(f"{API}/jobs/{job_id}/workflow-progress")).json()
    assert progress["status"] == "failed"
    assert _statuses(progress)["worker"] == "failed"
    assert _statuses(progress)["collect"] == "idle"  # never reached
    assert progress["agent_count"]["failed"] == 1
    assert progress["failure"]["code"] == "job.failed" and progress["failure"]["desc"]


async def test_the_stream_follows_pause_resume_and_cancel_then_ends(
    client: httpx.AsyncClient, memory_runtime: InMemoryRuntime, container: Container
) -> None:
    # The worker takes a minute of the test's clock: the job stays running until cancelled.
    job_id = await _submit(client, pipeline_manifest(worker={"simulate": {"delay_ms": 60_000}}))
    async with Stream(container.workflow_progress(), job_id) as stream:
        assert stream.snapshots()[0]["status"] == "pending"
        memory_runtime.run_until_idle()
        running = await stream.next_snapshot(
            lambda s: s["status"] == "running" and _statuses(s)["router"] == "done"
        )
        # The router took its first message, and so handed it on (a router has no other
        # work); the clock has not moved for the worker, which has yet to receive it.
        assert _statuses(running) == {"router": "done", "worker": "idle", "collect": "idle"}
        assert running["current_step_ids"] == [] and "current_step_id" not in running
        assert running["agent_count"]["done"] == 1 and running["agent_count"]["idle"] == 2
        await client.post(f"{API}/jobs/{job_id}/pause")
        paused = await stream.next_snapshot(lambda s: s["status"] == "paused")
        assert set(_statuses(paused).values()) == {"paused"}
        # Nothing changes while paused: heartbeats keep the stream open.
        beats = await stream.next_event("heartbeat")
        await client.post(f"{API}/jobs/{job_id}/resume")
        resumed = await stream.next_snapshot(lambda s: s["sequence"] > paused["sequence"])
        assert resumed["status"] == "running" and beats >= 1
        await client.post(f"{API}/jobs/{job_id}/cancel")
        memory_runtime.run_until_idle()
        await stream.next_snapshot(lambda s: s["status"] == "cancelled")
        async with asyncio.timeout(10):
            await stream.ended.wait()
    sequences = [s["sequence"] for s in stream.snapshots()]
    assert sequences == sorted(sequences)
    assert stream.snapshots()[-1]["status"] == "cancelled"


async def test_the_stream_of_a_finished_job_is_one_snapshot(
    client: httpx.AsyncClient, memory_runtime: InMemoryRuntime
) -> None:
    job_id = await _submit(client)
    memory_runtime.run_until_idle()
    answer = await client.get(f"{API}/jobs/{job_id}/workflow-progress/stream")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    blocks = [b for b in answer.text.replace("\r\n", "\n").split("\n\n") if b.strip()]
    snapshots = [b for b in blocks if "event: snapshot" in b]
    assert len(snapshots) == 1
    data = next(line for line in snapshots[0].splitlines() if line.startswith("data:"))
    assert orjson.loads(data[5:])["status"] == "completed"
    # An EventSource reconnects whenever a stream ends: an ended job's asks it to wait.
    assert blocks[-1].strip() == "retry: 3600000"


async def test_an_unknown_job_is_a_problem_before_any_stream(client: httpx.AsyncClient) -> None:
    for path in ("workflow-progress", "workflow-progress/stream"):
        answer = await client.get(f"{API}/jobs/nope-1-2/{path}")
        assert answer.status_code == 404, answer.text
        assert check_problem(answer.json())["error"] == "job_not_found"


async def test_the_first_snapshot_waits_for_the_history_another_reader_is_reading(
    client: httpx.AsyncClient, memory_runtime: InMemoryRuntime, container: Container
) -> None:
    """Another page's watch of the job started its follower, which has yet to read the
    history: the first snapshot shows that history, not an empty one of a running job."""
    job_id = await _submit(client, pipeline_manifest(worker={"simulate": {"delay_ms": 60_000}}))
    memory_runtime.run_until_idle()
    history = (await client.get(f"{API}/jobs/{job_id}/events")).json()["data"]
    journal = container.journal()
    journal.forget([job_id])
    watch = await journal.watch(job_id, ended=False)
    assert watch is not None
    async with aclosing(watch), Stream(container.workflow_progress(), job_id) as stream:
        first = stream.snapshots()[0]
        await client.post(f"{API}/jobs/{job_id}/cancel")
        memory_runtime.run_until_idle()
        async with asyncio.timeout(10):
            await stream.ended.wait()
    assert first["status"] == "running" and first["sequence"] == len(history)
    assert _statuses(first)["router"] == "done" and first["elapsed_seconds"] > 0
    statuses = [s["status"] for s in stream.snapshots()]
    assert statuses == sorted(statuses, key=["running", "cancelled"].index)


async def test_a_step_is_done_once_its_work_is_on_the_simulated_core(
    settings_factory: Callable[..., Settings],
) -> None:
    """What the real core (d26bef71) says of each agent's work, the simulation says alike:
    a step is done once its work is, while the job still runs."""
    clock = FakeClock()
    runtime = InMemoryRuntime(release="d26bef71", auto_run=False, clock=clock)
    container = build_container(settings_factory(sse_heartbeat_seconds=0.2))
    container.core.override(providers.Object(runtime))
    app = create_app(container)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client,
    ):
        job_id = await _submit(client, _fan_out({"quick": 1, "slow": 4}))
        runtime.run_until_idle()
        async with Stream(container.workflow_progress(), job_id) as stream:
            assert _statuses(stream.snapshots()[0]) == {
                "router": "done", "quick": "running", "slow": "running", "collect": "idle"
            }  # fmt: skip
            clock.advance(1.5)
            runtime.run_until_idle()
            midway = await stream.next_snapshot(lambda s: _statuses(s)["quick"] == "done")
            assert midway["status"] == "running"
            assert _statuses(midway) == {
                "router": "done", "quick": "done", "slow": "running", "collect": "done"
            }  # fmt: skip
            assert midway["agent_count"]["done"] == 3 and midway["current_step_ids"] == ["slow"]
            clock.advance(3)
            runtime.run_until_idle()
            async with asyncio.timeout(10):
                await stream.ended.wait()
    assert stream.snapshots()[-1]["status"] == "completed"
    assert set(_statuses(stream.snapshots()[-1]).values()) == {"done"}


@pytest.mark.parametrize("history_cache_mb", [64, 0])
async def test_many_viewers_share_one_read_of_the_history(
    settings_factory: Callable[..., Settings], history_cache_mb: int
) -> None:
    """With the journal, twenty open job pages cost one core stream; without it, each
    viewer reads the history itself, and sees the same."""
    runtime = counted = CountingRuntime(step_seconds=0.02)
    settings = settings_factory(history_cache_mb=history_cache_mb, sse_heartbeat_seconds=0.5)
    container = build_container(settings)
    container.core.override(providers.Object(counted))
    await runtime.start()
    try:
        progress = container.workflow_progress()
        ack = await runtime.submit_job(
            orjson.dumps(pipeline_manifest(worker={"simulate": {"delay_ms": 1500}})).decode(), {}
        )
        job_id = ack.job_id
        streams = [Stream(progress, job_id) for _ in range(20)]
        await asyncio.gather(*(stream.__aenter__() for stream in streams))
        try:
            for stream in streams:
                async with asyncio.timeout(15):
                    await stream.ended.wait()
        finally:
            for stream in streams:
                await stream.__aexit__()
    finally:
        journal = container.journal()
        if journal is not None:
            await journal.close()
        await runtime.close()
    finals = [s.snapshots()[-1] for s in streams]
    assert {f["status"] for f in finals} == {"completed"}
    assert len({f["sequence"] for f in finals}) == 1
    expected = 1 if history_cache_mb else 20
    assert counted.follows == expected, counted.follows


class CountingRuntime(InMemoryRuntime):
    """Counts the following streams opened on it."""

    follows = 0

    def stream_events(self, job_id: str, **options: Any) -> AsyncIterator[Any]:  # type: ignore[override]
        if options.get("follow"):
            self.follows += 1
        return super().stream_events(job_id, **options)
