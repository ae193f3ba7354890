"""Every RuntimePort implementation behaves as the MirrorNeuron core does."""

from __future__ import annotations

import asyncio
import re

import orjson
import pytest

from mn_api.application.ports import RuntimePort
from mn_api.domain.errors import (
    AlreadyExistsError,
    InvalidTransitionError,
    JobNotFoundError,
    ManifestInvalidError,
    NotSupportedError,
)
from mn_api.domain.events import EventRecord, Heartbeat
from tests.contract.conftest import (
    Capabilities,
    event_types,
    job_status,
    submit,
    wait_for_status,
)
from tests.support import pipeline_manifest

JOB_ID = re.compile(r"^pipeline-\d{13}-[0-9a-f]{12}$")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


async def test_submit_answers_a_core_style_id_and_pending(runtime: RuntimePort) -> None:
    ack = await runtime.submit_job(orjson.dumps(pipeline_manifest()).decode(), {"a.txt": b"x"})
    assert JOB_ID.match(ack.job_id)
    assert ack.status == "pending"


async def test_bad_manifest_lists_every_problem(runtime: RuntimePort) -> None:
    manifest = pipeline_manifest()
    manifest["nodes"][1]["agent_type"] = "wizard"
    manifest["edges"][0]["to_node"] = "ghost"
    with pytest.raises(ManifestInvalidError) as raised:
        await submit(runtime, manifest)
    assert any("agent_type" in e for e in raised.value.errors)
    assert any("ghost" in e for e in raised.value.errors)


async def test_a_pipeline_runs_to_completion_by_itself(runtime: RuntimePort) -> None:
    job_id = await submit(runtime, pipeline_manifest())
    assert await wait_for_status(runtime, job_id) == "completed"
    types = await event_types(runtime, job_id)
    assert types[:4] == ["job_pending", "job_validated", "job_scheduled", "job_running"]
    assert types.count("agent_message_received") == 3
    assert types[-1] == "job_completed"

    details = (await runtime.get_job(job_id)).value
    assert set(details) >= {"job", "summary", "agents", "recent_events", "sandboxes"}
    job = details["job"]
    assert job["job_id"] == job_id and job["graph_id"] == "pipeline"
    assert job["job_name"] == "three steps" and job["root_agent_ids"] == ["router"]
    assert job["manifest_ref"]["graph_id"] == "pipeline"
    assert {e["from_node"] for e in job["topology"]["edges"]} == {"router", "worker"}
    agents = {a["agent_id"]: a for a in details["agents"]}
    assert agents["worker"]["processed_messages"] == 1
    assert agents["worker"]["metadata"]["outbound_edges"] == ["collect"]
    assert all(a["mailbox_depth"] == 0 for a in agents.values())
    assert details["recent_events"][-1]["type"] == "job_completed"


async def test_messages_follow_the_edges_with_their_types(runtime: RuntimePort) -> None:
    manifest = pipeline_manifest()
    manifest["initial_inputs"] = {"router": [{"n": 1}, {"n": 2}]}
    job_id = await submit(runtime, manifest)
    await wait_for_status(runtime, job_id)
    deliveries = [
        item.value
        async for item in runtime.stream_events(job_id, follow=False)
        if isinstance(item, EventRecord) and item.type == "agent_message_received"
    ]
    hops = [(d["payload"]["from"], d["agent_id"], d["payload"]["type"]) for d in deliveries]
    assert hops.count(("router", "worker", "task")) == 2
    assert hops.count(("worker", "collect", "result")) == 2
    assert {d["payload"]["message"]["n"] for d in deliveries} == {1, 2}
    for event in deliveries:
        assert TIMESTAMP.match(event["timestamp"])
        assert event["payload"]["to"] == event["agent_id"]


async def test_unknown_jobs_are_not_found_everywhere(runtime: RuntimePort) -> None:
    for operation in (runtime.get_job, runtime.cancel_job, runtime.pause_job, runtime.resume_job):
        with pytest.raises(JobNotFoundError):
            await operation("ghost-1-000000000000")
    with pytest.raises(JobNotFoundError):
        async for _ in runtime.stream_events("ghost-1-000000000000", follow=False):
            pass


async def test_list_is_newest_first_and_filters_terminal(runtime: RuntimePort) -> None:
    first = await submit(runtime, pipeline_manifest())
    await wait_for_status(runtime, first)
    daemon = pipeline_manifest()
    daemon["daemon"] = True
    second = await submit(runtime, daemon)
    listed = (await runtime.list_jobs(0, True)).value["data"]
    ids = [j["job_id"] for j in listed]
    assert ids.index(second) < ids.index(first)
    assert set(listed[0]) >= {"job_id", "graph_id", "status", "submitted_at", "updated_at"}
    live = [j["job_id"] for j in (await runtime.list_jobs(0, False)).value["data"]]
    assert second in live and first not in live
    assert len((await runtime.list_jobs(1, True)).value["data"]) == 1
    await runtime.cancel_job(second)


async def test_pause_holds_and_resume_continues(runtime: RuntimePort) -> None:
    manifest = pipeline_manifest(worker={"simulate": {"delay_ms": 200}})
    job_id = await submit(runtime, manifest)
    paused = await runtime.pause_job(job_id)
    assert paused.status == "paused"
    count = len(await event_types(runtime, job_id))
    await asyncio.sleep(0.1)
    assert await job_status(runtime, job_id) == "paused"
    assert len(await event_types(runtime, job_id)) == count
    with pytest.raises(InvalidTransitionError):
        await runtime.pause_job(job_id)
    resumed = await runtime.resume_job(job_id)
    assert resumed.status in {"pending", "queued", "running"}
    with pytest.raises(InvalidTransitionError):
        await runtime.resume_job(job_id)
    assert await wait_for_status(runtime, job_id) == "completed"
    types = await event_types(runtime, job_id)
    assert "job_paused" in types and "job_resumed" in types


async def test_cancel_ends_a_job_and_terminal_jobs_refuse_everything(runtime: RuntimePort) -> None:
    daemon = pipeline_manifest()
    daemon["daemon"] = True
    job_id = await submit(runtime, daemon)
    await wait_for_status(runtime, job_id, {"running"})
    assert (await runtime.cancel_job(job_id)).status == "cancelled"
    assert (await event_types(runtime, job_id))[-1] == "job_cancelled"
    for operation in (runtime.cancel_job, runtime.pause_job, runtime.resume_job):
        with pytest.raises(InvalidTransitionError):
            await operation(job_id)


async def test_a_failing_node_fails_the_job(runtime: RuntimePort) -> None:
    job_id = await submit(runtime, pipeline_manifest(worker={"simulate": {"fail": True}}))
    assert await wait_for_status(runtime, job_id) == "failed"
    assert (await event_types(runtime, job_id))[-1] == "job_failed"


async def test_dropped_deliveries_become_dead_letters_that_replay(
    runtime: RuntimePort, capabilities: Capabilities
) -> None:
    job_id = await submit(runtime, pipeline_manifest(worker={"simulate": {"drop_first": 1}}))
    assert await wait_for_status(runtime, job_id) == "completed"
    records = [
        item
        async for item in runtime.stream_events(job_id, follow=False)
        if isinstance(item, EventRecord)
    ]
    letters = [r for r in records if r.type == "dead_letter"]
    assert len(letters) == 1
    letter = letters[0].value
    assert letter["agent_id"] == "worker"
    envelope = letter["payload"]["message"]["envelope"]
    assert envelope == {"from": "router", "to": "worker", "type": "task"}
    assert [r.type for r in records].count("agent_message_received") == 1

    if not capabilities.replay:
        with pytest.raises(NotSupportedError):
            await runtime.replay_dead_letter(job_id, letters[0].index)
        return
    ack = await runtime.replay_dead_letter(job_id, letters[0].index)
    assert ack.agent_id == "worker" and ack.job_id == job_id
    assert await wait_for_status(runtime, job_id) == "completed"
    types = await event_types(runtime, job_id)
    assert types.count("agent_message_received") == 3
    with pytest.raises(AlreadyExistsError):
        await runtime.replay_dead_letter(job_id, letters[0].index)


async def test_clear_removes_only_terminal_jobs(runtime: RuntimePort) -> None:
    done = await submit(runtime, pipeline_manifest())
    await wait_for_status(runtime, done)
    daemon = pipeline_manifest()
    daemon["daemon"] = True
    live = await submit(runtime, daemon)
    assert await runtime.clear_jobs() >= 1
    with pytest.raises(JobNotFoundError):
        await runtime.get_job(done)
    assert await job_status(runtime, live) in {"pending", "queued", "running"}
    await runtime.cancel_job(live)


async def test_summary_reports_a_node_with_executor_pools(runtime: RuntimePort) -> None:
    job_id = await submit(runtime, pipeline_manifest())
    summary = (await runtime.system_summary()).value
    node = summary["nodes"][0]
    assert {"name", "self?", "connected_nodes", "scheduler_hint", "executor_pools"} <= set(node)
    pool = node["executor_pools"]["default"]
    assert {"capacity", "available", "in_use", "queued", "active"} <= set(pool)
    assert job_id in {j["job_id"] for j in summary["jobs"]}


async def test_following_a_job_streams_until_it_ends(
    runtime: RuntimePort, capabilities: Capabilities
) -> None:
    job_id = await submit(runtime, pipeline_manifest())
    positions = []
    async with asyncio.timeout(10):
        async for item in runtime.stream_events(job_id, follow=True, heartbeat_seconds=1):
            if isinstance(item, EventRecord):
                positions.append(item.index)
    assert positions == list(range(len(positions)))
    assert await job_status(runtime, job_id) == "completed"
    assert len(positions) == len(await event_types(runtime, job_id))


async def test_streams_resume_after_a_position(runtime: RuntimePort) -> None:
    job_id = await submit(runtime, pipeline_manifest())
    await wait_for_status(runtime, job_id)
    everything = [
        i.index
        async for i in runtime.stream_events(job_id, follow=False)
        if isinstance(i, EventRecord)
    ]
    after = [
        i.index
        async for i in runtime.stream_events(job_id, follow=False, after=3)
        if isinstance(i, EventRecord)
    ]
    assert after == everything[4:]


async def test_an_idle_daemon_stream_sends_heartbeats(runtime: RuntimePort) -> None:
    daemon = pipeline_manifest()
    daemon["daemon"] = True
    job_id = await submit(runtime, daemon)
    await wait_for_status(runtime, job_id, {"running"})
    await asyncio.sleep(0.05)
    beats = 0
    stream = runtime.stream_events(job_id, follow=True, heartbeat_seconds=0.05)
    async with asyncio.timeout(5):
        async for item in stream:
            if isinstance(item, Heartbeat):
                beats += 1
                if beats == 2:
                    break
    await stream.aclose()
    assert beats == 2
    await runtime.cancel_job(job_id)
