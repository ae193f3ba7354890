"""Every RuntimePort implementation behaves as a released MirrorNeuron core does.

The suite runs over each release profile (CORE.md: 1.1, 1.2.5, 1.2.31), in process and
through GrpcRuntime -> mn-fake-core; what differs between releases is in `capabilities`.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import orjson
import pytest

from mn_api.application.ports import RuntimePort
from mn_api.domain.errors import (
    AlreadyExistsError,
    InvalidTransitionError,
    JobNotFoundError,
    ManifestInvalidError,
    NotSupportedError,
    RequirementsNotMetError,
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

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
JOB_FIELDS = {
    "job_id",
    "graph_id",
    "job_name",
    "daemon",
    "status",
    "submitted_at",
    "updated_at",
    "root_agent_ids",
    "placement_policy",
    "recovery_policy",
    "manifest_ref",
}
SUMMARY_FIELDS = {
    "job_id",
    "graph_id",
    "job_name",
    "status",
    "live?",
    "submitted_at",
    "updated_at",
    "placement_policy",
    "recovery_policy",
    "executor_count",
    "active_executors",
    "nodes",
    "sandbox_names",
    "last_event",
}
AGENT_FIELDS = {
    "agent_id",
    "agent_type",
    "assigned_node",
    "processed_messages",
    "mailbox_depth",
    "paused?",
    "last_heartbeat_at",
    "live?",
    "status",
    "running?",
    "last_error",
}


def slow_worker(**simulate: Any) -> dict:
    """A pipeline whose worker takes 300 ms a message; `simulate` goes to the job's metadata."""
    manifest = pipeline_manifest(worker={"simulate": {"delay_ms": 300}})
    if simulate:
        manifest["metadata"] = {"simulate": simulate}
    return manifest


async def records(runtime: RuntimePort, job_id: str) -> list[EventRecord]:
    return [
        item
        async for item in runtime.stream_events(job_id, follow=False)
        if isinstance(item, EventRecord)
    ]


async def test_submit_answers_the_releases_job_id_and_pending(
    runtime: RuntimePort, capabilities: Capabilities
) -> None:
    ack = await runtime.submit_job(orjson.dumps(pipeline_manifest()).decode(), {"a.txt": b"x"})
    assert capabilities.job_id.match(ack.job_id), ack.job_id
    assert ack.status == "pending"


async def test_bad_manifest_lists_every_problem(runtime: RuntimePort) -> None:
    manifest = pipeline_manifest()
    manifest["nodes"][1]["agent_type"] = "wizard"
    manifest["edges"][0]["to_node"] = "ghost"
    manifest["nodes"][0]["type"] = "reduce"
    with pytest.raises(ManifestInvalidError) as raised:
        await submit(runtime, manifest)
    errors = raised.value.errors
    assert len(errors) == 3, errors
    assert any("agent_type" in e for e in errors)
    assert any("ghost" in e for e in errors)
    assert any("is not supported for agent_type" in e for e in errors)


async def test_text_that_is_no_json_gets_the_parsers_message(runtime: RuntimePort) -> None:
    with pytest.raises(ManifestInvalidError) as raised:
        await runtime.submit_job("{nope", {})
    assert raised.value.errors == ['unexpected byte at position 1: 0x6E ("n")']


async def test_aliases_single_entrypoints_and_root_roles_are_accepted(
    runtime: RuntimePort,
) -> None:
    manifest = pipeline_manifest()
    manifest["nodes"][0]["agent_type"] = "relay"
    manifest["nodes"][2]["agent_type"] = "collector"
    del manifest["entrypoints"]
    manifest["nodes"][0]["role"] = "root"
    del manifest["job_name"]
    job_id = await submit(runtime, manifest)
    assert await wait_for_status(runtime, job_id) == "completed"
    job = (await runtime.get_job(job_id)).value["job"]
    assert job["root_agent_ids"] == ["router"] and job["job_name"] == "pipeline"


async def test_a_pipeline_runs_to_completion_with_the_real_documents(
    runtime: RuntimePort, capabilities: Capabilities
) -> None:
    job_id = await submit(runtime, pipeline_manifest())
    assert await wait_for_status(runtime, job_id) == "completed"
    history = await records(runtime, job_id)
    types = [r.type for r in history]
    assert types[:4] == ["job_pending", "job_validated", "job_scheduled", "job_running"]
    assert types.count("agent_message_received") == 3
    assert types[-1] == "job_completed"
    for record in history:
        event = record.value
        assert event["job_id"] == job_id and TIMESTAMP.match(event["timestamp"])
        assert ("version" in event) is capabilities.event_version
        if event["type"].startswith("job_"):
            assert "agent_id" not in event and "payload" not in event, event
    assert history[2].value["node"]  # job_scheduled names its node at the top level

    details = (await runtime.get_job(job_id)).value
    assert set(details) == {"job", "summary", "agents", "recent_events", "sandboxes"}
    job = details["job"]
    assert set(job) >= JOB_FIELDS and "topology" not in job
    assert ("result" in job) is capabilities.result_in_details
    assert job["job_name"] == "three steps" and job["root_agent_ids"] == ["router"]
    assert set(job["manifest_ref"]) == {"graph_id", "manifest_version", "manifest_path", "job_path"}
    assert set(details["summary"]) >= SUMMARY_FIELDS
    assert details["summary"]["executor_count"] == 1
    agents = {a["agent_id"]: a for a in details["agents"]}
    for agent in agents.values():
        assert set(agent) >= AGENT_FIELDS
        assert "type" not in agent and "metadata" not in agent
    assert agents["worker"]["processed_messages"] == 1
    assert agents["worker"]["status"] == "completed"
    assert agents["router"]["status"] == "ready"
    recent = details["recent_events"]
    if capabilities.recent_events:
        assert recent[0]["type"] == "job_completed"  # newest first
        assert [e["timestamp"] for e in recent] == sorted(
            (e["timestamp"] for e in recent), reverse=True
        )
    else:
        assert recent == []


async def test_messages_follow_the_edges_as_summaries(runtime: RuntimePort) -> None:
    manifest = pipeline_manifest()
    manifest["initial_inputs"] = {"router": [{"n": 1}, {"n": 2}]}
    job_id = await submit(runtime, manifest)
    await wait_for_status(runtime, job_id)
    deliveries = [r.value for r in await records(runtime, job_id) if r.type.startswith("agent_")]
    hops = [(d["payload"].get("from"), d["agent_id"], d["payload"]["type"]) for d in deliveries]
    assert hops.count(("router", "worker", "task")) == 2
    assert hops.count(("worker", "collect", "result")) == 2
    for event in deliveries:
        summary = event["payload"]
        assert summary["to"] == event["agent_id"]
        assert {"message_id", "to", "type", "class", "content_type", "content_encoding"} <= set(
            summary
        )
        assert "body" not in summary and "message" not in summary
    assert len({d["payload"]["message_id"] for d in deliveries}) == len(deliveries)


async def test_unknown_jobs_are_not_found_everywhere(runtime: RuntimePort) -> None:
    for operation in (runtime.get_job, runtime.cancel_job, runtime.pause_job, runtime.resume_job):
        with pytest.raises(JobNotFoundError):
            await operation("ghost-1-000000000000")
    for follow in (False, True):
        with pytest.raises(JobNotFoundError):
            async with asyncio.timeout(5):
                async for _ in runtime.stream_events(
                    "ghost-1-000000000000", follow=follow, heartbeat_seconds=0.05
                ):
                    pass


async def test_list_is_newest_update_first_and_filters_terminal(runtime: RuntimePort) -> None:
    first = await submit(runtime, pipeline_manifest())
    await wait_for_status(runtime, first)
    daemon = {**pipeline_manifest(), "daemon": True}
    second = await submit(runtime, daemon)
    await wait_for_status(runtime, second, {"running"})
    listed = (await runtime.list_jobs(0, True)).value["data"]
    assert [j["job_id"] for j in listed][:2] == [second, first]
    assert set(listed[0]) >= SUMMARY_FIELDS
    stamps = [j["updated_at"] for j in listed]
    assert stamps == sorted(stamps, reverse=True)
    live = [j["job_id"] for j in (await runtime.list_jobs(-5, False)).value["data"]]
    assert second in live and first not in live
    assert len((await runtime.list_jobs(1, True)).value["data"]) == 1
    await runtime.cancel_job(second)


async def test_pause_only_from_running_and_resume_answers_resumed(
    runtime: RuntimePort, capabilities: Capabilities
) -> None:
    # The scheduler takes a second to find room: the job is surely pending at first.
    job_id = await submit(runtime, {**slow_worker(scheduling_ms=1000), "daemon": True})
    with pytest.raises(InvalidTransitionError):
        await runtime.pause_job(job_id)  # still pending
    await wait_for_status(runtime, job_id, {"running"})
    assert (await runtime.pause_job(job_id)).status == "paused"
    count = len(await event_types(runtime, job_id))
    await asyncio.sleep(0.4)
    assert await job_status(runtime, job_id) == "paused"
    assert len(await event_types(runtime, job_id)) == count
    with pytest.raises(InvalidTransitionError):
        await runtime.pause_job(job_id)
    assert (await runtime.resume_job(job_id)).status == "resumed"
    assert await job_status(runtime, job_id) == "running"
    if capabilities.resume_of_running_succeeds:
        assert (await runtime.resume_job(job_id)).status == "resumed"
    else:
        with pytest.raises(InvalidTransitionError):
            await runtime.resume_job(job_id)
    types = await event_types(runtime, job_id)
    assert "job_paused" in types and "job_resumed" in types
    await runtime.cancel_job(job_id)


async def test_cancel_ends_a_job_and_terminal_jobs_refuse_or_repeat(
    runtime: RuntimePort, capabilities: Capabilities
) -> None:
    job_id = await submit(runtime, {**pipeline_manifest(), "daemon": True})
    await wait_for_status(runtime, job_id, {"running"})
    answers = {"cancelled", "cancellation_pending"} if capabilities.cancellation_pending else set()
    assert (await runtime.cancel_job(job_id)).status in answers | {"cancelled"}
    assert await wait_for_status(runtime, job_id) == "cancelled"
    assert (await event_types(runtime, job_id))[-1] == "job_cancelled"
    if capabilities.cancel_of_terminal_succeeds:
        assert (await runtime.cancel_job(job_id)).status == "cancelled"
    else:
        with pytest.raises(InvalidTransitionError):
            await runtime.cancel_job(job_id)
    for operation in (runtime.pause_job, runtime.resume_job):
        with pytest.raises(InvalidTransitionError):
            await operation(job_id)


async def test_cancelling_a_job_with_messages_in_flight(
    runtime: RuntimePort, capabilities: Capabilities
) -> None:
    job_id = await submit(runtime, slow_worker())
    await wait_for_status(runtime, job_id, {"running"})
    answer = (await runtime.cancel_job(job_id)).status
    if capabilities.cancellation_pending:
        assert answer == "cancellation_pending"
    else:
        assert answer == "cancelled"
    assert await wait_for_status(runtime, job_id) == "cancelled"


async def test_a_job_whose_coordinator_is_gone_is_force_cancelled(
    runtime: RuntimePort, capabilities: Capabilities
) -> None:
    job_id = await submit(runtime, slow_worker(coordinator_lost=True))
    await wait_for_status(runtime, job_id, {"running"})
    summary = (await runtime.get_job(job_id)).value["summary"]
    assert summary["live?"] is False and summary["status"] == "running"
    expected = "force cancelled" if capabilities.force_cancelled else "cancelled"
    assert (await runtime.cancel_job(job_id)).status == expected
    assert await job_status(runtime, job_id) == "cancelled"


async def test_a_failing_node_fails_the_job(runtime: RuntimePort) -> None:
    job_id = await submit(runtime, pipeline_manifest(worker={"simulate": {"fail": True}}))
    assert await wait_for_status(runtime, job_id) == "failed"
    failed = (await records(runtime, job_id))[-1].value
    assert failed["type"] == "job_failed" and failed["agent_id"] == "worker"
    assert failed["reason"]
    agents = {a["agent_id"]: a for a in (await runtime.get_job(job_id)).value["agents"]}
    assert agents["worker"]["status"] == "error" and agents["worker"]["last_error"]


async def test_dropped_deliveries_become_dead_letters_that_replay(
    runtime: RuntimePort, capabilities: Capabilities
) -> None:
    job_id = await submit(runtime, pipeline_manifest(worker={"simulate": {"drop_first": 1}}))
    assert await wait_for_status(runtime, job_id) == "completed"
    history = await records(runtime, job_id)
    letters = [r for r in history if r.type == "dead_letter"]
    assert len(letters) == 1
    letter = letters[0].value
    assert letter["agent_id"] == "worker"
    message = letter["message"]
    assert {"envelope", "headers", "body", "artifacts", "stream"} <= set(message)
    envelope = message["envelope"]
    assert (envelope["from"], envelope["to"], envelope["type"]) == ("router", "worker", "task")
    if capabilities.dead_letter_reason:
        assert set(letter["payload"]) == {"reason", "message_id", "attempt"}
    else:
        assert "payload" not in letter and "reason" not in letter
    assert [r.type for r in history].count("agent_message_received") == 1

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
    live = await submit(runtime, {**pipeline_manifest(), "daemon": True})
    assert await runtime.clear_jobs() >= 1
    with pytest.raises(JobNotFoundError):
        await runtime.get_job(done)
    assert await job_status(runtime, live) in {"pending", "running"}
    await runtime.cancel_job(live)


async def test_summary_reports_the_node_as_cores_do(
    runtime: RuntimePort, capabilities: Capabilities
) -> None:
    job_id = await submit(runtime, pipeline_manifest())
    summary = (await runtime.system_summary()).value
    node = summary["nodes"][0]
    assert {"name", "self?", "connected_nodes", "scheduler_hint", "executor_pools"} <= set(node)
    assert node["name"] in node["connected_nodes"] and node["self?"] is True
    assert set(node["hardware"]) == {"cpu", "memory", "gpu"}
    pool = node["executor_pools"]["default"]
    assert {"capacity", "available", "in_use", "queued", "active"} <= set(pool)
    assert pool["capacity"] == 4
    assert job_id in {j["job_id"] for j in summary["jobs"]}
    assert ("metrics" in summary) is capabilities.summary_metrics
    if capabilities.summary_metrics:
        assert summary["metrics"]["jobs"]["total"] >= 1
        assert set(summary["metrics"]) == {"jobs", "nodes", "runtime"}


async def test_requirements_beyond_the_node_are_refused_where_checked(
    runtime: RuntimePort, capabilities: Capabilities
) -> None:
    manifest = {**pipeline_manifest(), "requirements": {"cpu": 64, "memory": "1GB"}}
    if not capabilities.requirements:
        assert await submit(runtime, manifest)
        return
    with pytest.raises(RequirementsNotMetError) as raised:
        await submit(runtime, manifest)
    assert raised.value.detail.startswith("requirements_not_met: cpu=64")
    assert await submit(runtime, {**pipeline_manifest(), "requirements": {"cpu": 2}})


async def test_following_a_job_streams_until_it_ends(runtime: RuntimePort) -> None:
    job_id = await submit(runtime, pipeline_manifest())
    positions = []
    async with asyncio.timeout(10):
        async for item in runtime.stream_events(job_id, follow=True, heartbeat_seconds=1):
            if isinstance(item, EventRecord):
                positions.append(item.index)
    assert positions == list(range(len(positions)))
    assert await job_status(runtime, job_id) == "completed"
    assert len(positions) == len(await event_types(runtime, job_id))


async def test_a_boundary_duplicate_is_passed_on_once(runtime: RuntimePort) -> None:
    manifest = slow_worker(duplicate_boundary=True)
    job_id = await submit(runtime, manifest)
    await wait_for_status(runtime, job_id, {"running"})
    raws = []
    async with asyncio.timeout(10):
        async for item in runtime.stream_events(job_id, follow=True, heartbeat_seconds=0.05):
            if isinstance(item, EventRecord):
                assert item.index == len(raws)
                raws.append(item.document.raw)
    assert len(set(raws)) == len(raws)
    assert raws == [r.document.raw for r in await records(runtime, job_id)]


async def test_streams_resume_after_a_position(runtime: RuntimePort) -> None:
    job_id = await submit(runtime, pipeline_manifest())
    await wait_for_status(runtime, job_id)
    everything = [r.index for r in await records(runtime, job_id)]
    after = [
        i.index
        async for i in runtime.stream_events(job_id, follow=False, after=3)
        if isinstance(i, EventRecord)
    ]
    assert after == everything[4:]


async def test_an_idle_daemon_stream_sends_heartbeats_not_events(runtime: RuntimePort) -> None:
    job_id = await submit(runtime, {**pipeline_manifest(), "daemon": True})
    await wait_for_status(runtime, job_id, {"running"})
    await asyncio.sleep(0.05)
    beats = 0
    indexes = []
    stream = runtime.stream_events(job_id, follow=True, heartbeat_seconds=0.05)
    async with asyncio.timeout(5):
        async for item in stream:
            if isinstance(item, Heartbeat):
                beats += 1
                if beats == 2:
                    break
            else:
                assert item.type != "stream_heartbeat"
                indexes.append(item.index)
    await stream.aclose()
    assert beats == 2
    assert indexes == list(range(len(indexes)))
    await runtime.cancel_job(job_id)
