"""The in-memory runtime's own mechanics, driven step by step with a fake clock."""

from __future__ import annotations

import orjson
import pytest

from mn_api.adapters.memory.model import MAX_HOPS
from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.domain.errors import InvalidArgumentError, JobNotFoundError
from mn_api.domain.events import EventRecord
from tests.support import FakeClock, pipeline_manifest


async def _submit(runtime: InMemoryRuntime, manifest: dict) -> str:
    return (await runtime.submit_job(orjson.dumps(manifest).decode(), {})).job_id


async def _types(runtime: InMemoryRuntime, job_id: str) -> list[str]:
    return [
        r.type
        async for r in runtime.stream_events(job_id, follow=False)
        if isinstance(r, EventRecord)
    ]


async def _status(runtime: InMemoryRuntime, job_id: str) -> str:
    return (await runtime.get_job(job_id)).value["job"]["status"]


async def test_each_step_moves_the_lifecycle_one_stage(memory_runtime: InMemoryRuntime) -> None:
    job_id = await _submit(memory_runtime, pipeline_manifest())
    seen = [await _status(memory_runtime, job_id)]
    for _ in range(6):
        memory_runtime.step()
        seen.append(await _status(memory_runtime, job_id))
    # The step that delivers the last message also completes the job.
    assert seen == ["pending", "pending", "pending", "running", "running", "running", "completed"]
    assert await _types(memory_runtime, job_id) == [
        "job_pending",
        "job_validated",
        "job_scheduled",
        "job_running",
        "agent_message_received",
        "agent_message_received",
        "agent_message_received",
        "job_completed",
    ]
    assert not memory_runtime.step()


async def test_delay_holds_a_node_until_the_clock_passes(
    memory_runtime: InMemoryRuntime, clock: FakeClock
) -> None:
    job_id = await _submit(
        memory_runtime, pipeline_manifest(worker={"simulate": {"delay_ms": 500}})
    )
    memory_runtime.run_until_idle()
    assert await _status(memory_runtime, job_id) == "running"
    details = (await memory_runtime.get_job(job_id)).value
    assert {a["agent_id"]: a["mailbox_depth"] for a in details["agents"]}["worker"] == 1
    clock.advance(0.6)
    memory_runtime.run_until_idle()
    assert await _status(memory_runtime, job_id) == "completed"


async def test_a_job_stays_pending_until_the_scheduler_finds_room(
    memory_runtime: InMemoryRuntime, clock: FakeClock
) -> None:
    manifest = {**pipeline_manifest(), "metadata": {"simulate": {"scheduling_ms": 500}}}
    job_id = await _submit(memory_runtime, manifest)
    memory_runtime.run_until_idle()
    assert await _status(memory_runtime, job_id) == "pending"
    assert await _types(memory_runtime, job_id) == ["job_pending", "job_validated"]
    clock.advance(0.6)
    memory_runtime.run_until_idle()
    assert await _status(memory_runtime, job_id) == "completed"


async def test_cycles_end_in_a_hop_limit_dead_letter(memory_runtime: InMemoryRuntime) -> None:
    manifest = pipeline_manifest()
    manifest["edges"].append({"from_node": "collect", "to_node": "router", "message_type": "again"})
    job_id = await _submit(memory_runtime, manifest)
    memory_runtime.run_until_idle()
    assert await _status(memory_runtime, job_id) == "completed"
    events = [
        r.value
        async for r in memory_runtime.stream_events(job_id, follow=False)
        if isinstance(r, EventRecord)
    ]
    assert events[-2]["type"] == "dead_letter"
    assert events[-2]["payload"]["reason"] == "message_expired"
    assert sum(e["type"] == "agent_message_received" for e in events) == MAX_HOPS + 1


async def test_oldest_terminal_jobs_are_evicted_past_the_cap(clock: FakeClock) -> None:
    runtime = InMemoryRuntime(auto_run=False, clock=clock, max_jobs=3)
    first = await _submit(runtime, pipeline_manifest())
    runtime.run_until_idle()
    daemon = {**pipeline_manifest(), "daemon": True}
    live = [await _submit(runtime, daemon) for _ in range(3)]
    with pytest.raises(JobNotFoundError):
        await runtime.get_job(first)
    for job_id in live:
        await runtime.get_job(job_id)


async def test_event_history_is_capped_but_positions_stay_stable(clock: FakeClock) -> None:
    runtime = InMemoryRuntime(auto_run=False, clock=clock, max_events_per_job=20)
    manifest = pipeline_manifest()
    manifest["initial_inputs"] = {"router": [{"n": i} for i in range(20)]}
    job_id = await _submit(runtime, manifest)
    runtime.run_until_idle()
    records = [
        r async for r in runtime.stream_events(job_id, follow=False) if isinstance(r, EventRecord)
    ]
    assert len(records) <= 22
    positions = [r.index for r in records]
    assert positions == list(range(positions[0], positions[0] + len(positions)))
    assert records[-1].type == "job_completed"
    assert positions[-1] > 22


async def test_replay_needs_a_dead_letter_at_that_position(memory_runtime: InMemoryRuntime) -> None:
    job_id = await _submit(memory_runtime, pipeline_manifest())
    memory_runtime.run_until_idle()
    with pytest.raises(InvalidArgumentError):
        await memory_runtime.replay_dead_letter(job_id, 0)
    with pytest.raises(InvalidArgumentError):
        await memory_runtime.replay_dead_letter(job_id, 999)


async def test_a_full_mailbox_turns_deliveries_into_dead_letters(clock: FakeClock) -> None:
    runtime = InMemoryRuntime(auto_run=False, clock=clock, max_inflight_per_job=2)
    manifest = pipeline_manifest()
    manifest["initial_inputs"] = {"router": [{"n": i} for i in range(4)]}
    job_id = await _submit(runtime, manifest)
    runtime.run_until_idle()
    events = [
        r.value
        async for r in runtime.stream_events(job_id, follow=False)
        if isinstance(r, EventRecord)
    ]
    reasons = [e["payload"]["reason"] for e in events if e["type"] == "dead_letter"]
    assert reasons == ["mailbox_full", "mailbox_full"]


async def test_started_runtime_runs_jobs_on_its_own() -> None:
    runtime = InMemoryRuntime(step_seconds=0)
    await runtime.start()
    try:
        job_id = await _submit(runtime, pipeline_manifest())
        stream = runtime.stream_events(job_id, follow=True, heartbeat_seconds=1)
        types = [r.type async for r in stream if isinstance(r, EventRecord)]
        assert types[-1] == "job_completed"
    finally:
        await runtime.close()
