"""The RuntimePort contract of wire generation A, run against the real core itself.

Each test runs three times: against the real MirrorNeuron core (source d26bef71, started
from ../shared/realcore) through GrpcRuntime, against the in-memory runtime's `d26bef71`
profile, and against that profile behind mn-fake-core. What the tests state is what the
real core does; the simulation must do the same.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from mn_api.application.ports import RuntimePort
from mn_api.domain.errors import (
    CoordinatorGoneError,
    InvalidTransitionError,
    JobNotFoundError,
    ManifestInvalidError,
    NotSupportedError,
)
from mn_api.domain.events import TERMINAL_EVENT_STATUS, EventRecord
from tests.contract.conftest import generation_a, wait_for_status

JOB_ID = re.compile(r"^(?P<graph>.+)-\d{13}-[0-9a-f]{12}$")
NO_SANDBOX = (
    '%{"attempts" => 1, "error" => "\\"failed to invoke openshell: Erlang error: :enoent\\""}'
)
HOST_LOCAL = "MirrorNeuron.Runner.HostLocal"
# What an executor's message sets off, once it is received.
LEASED_RUN = [
    "agent_message_received",
    "executor_lease_requested",
    "executor_lease_acquired",
    "executor_lease_released",
]
AGENT_FIELDS = {
    "agent_id", "agent_type", "assigned_node", "last_error", "last_heartbeat_at", "lease",
    "live?", "mailbox_depth", "paused?", "processed_messages", "running?", "sandbox_name",
    "status",
}  # fmt: skip
JOB_FIELDS = {
    "job_id", "graph_id", "job_name", "status", "submitted_at", "updated_at",
    "root_agent_ids", "placement_policy", "recovery_policy", "result", "manifest_ref",
}  # fmt: skip


def relay(collect: dict[str, Any] | None = None, inputs: Any = None) -> dict[str, Any]:
    """entry (router) -> collect (aggregator), on the `init` messages a job starts with."""
    manifest: dict[str, Any] = {
        "manifest_version": "1",
        "graph_id": "relay",
        "nodes": [
            {"node_id": "entry", "agent_type": "router"},
            {"node_id": "collect", "agent_type": "aggregator", "config": collect or {}},
        ],
        "edges": [{"from_node": "entry", "to_node": "collect", "message_type": "init"}],
        "entrypoints": ["entry"],
    }
    if inputs is not None:
        manifest["initial_inputs"] = inputs
    return manifest


def executor(config: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "manifest_version": "1",
        "graph_id": "exec",
        "nodes": [{"node_id": "run", "agent_type": "executor", "config": config or {}}],
        "edges": [],
        "entrypoints": ["run"],
        "initial_inputs": {"run": [{"x": 1}]},
    }


@pytest.fixture(params=["real", "memory", "grpc"])
async def runtime(request: pytest.FixtureRequest) -> AsyncIterator[RuntimePort]:
    core = request.getfixturevalue("real_core") if request.param == "real" else None
    async with generation_a(request.param, core) as runtime:
        yield runtime


async def submit(runtime: RuntimePort, manifest: dict[str, Any]) -> str:
    return (await runtime.submit_job(orjson.dumps(manifest).decode(), {})).job_id


async def history(runtime: RuntimePort, job_id: str) -> list[dict[str, Any]]:
    return [
        dict(item.value)
        async for item in runtime.stream_events(job_id, follow=False)
        if isinstance(item, EventRecord)
    ]


async def ended(runtime: RuntimePort, job_id: str) -> list[dict[str, Any]]:
    """The history of a job that has ended, once it holds the event that ended it: the real
    core records the status a moment before that event reaches the history."""
    async with asyncio.timeout(10):
        while True:
            events = await history(runtime, job_id)
            if events and events[-1]["type"] in TERMINAL_EVENT_STATUS:
                return events
            await asyncio.sleep(0.02)


async def settle(runtime: RuntimePort, job_id: str, count: int) -> list[dict[str, Any]]:
    """The history once it holds `count` events (a live job's agents are quick)."""
    async with asyncio.timeout(10):
        while True:
            events = await history(runtime, job_id)
            if len(events) >= count:
                return events
            await asyncio.sleep(0.02)


async def test_submission_answers_pending_and_an_id_of_graph_millis_and_hex(
    runtime: RuntimePort,
) -> None:
    ack = await runtime.submit_job(orjson.dumps(relay()).decode(), {"in.txt": b"x"})
    assert ack.status == "pending"
    assert JOB_ID.match(ack.job_id) and JOB_ID.match(ack.job_id)["graph"] == "relay"
    await runtime.cancel_job(ack.job_id)


async def test_a_job_completes_when_its_aggregator_completes_it(runtime: RuntimePort) -> None:
    job_id = await submit(runtime, relay({"complete_on_message": True}, {"entry": [{"n": 1}]}))
    assert await wait_for_status(runtime, job_id) == "completed"
    events = await ended(runtime, job_id)
    assert [e["type"] for e in events] == [
        "job_pending", "job_validated", "job_scheduled", "job_running",
        "agent_message_received", "agent_message_received", "aggregator_received",
        "job_completed",
    ]  # fmt: skip
    for event in events[:4]:
        extra = set(event) - {"type", "timestamp", "job_id"}
        assert extra == ({"node"} if event["type"] == "job_scheduled" else set()), event
    start = events[4]["payload"]
    assert (start["from"], start["to"], start["type"], start["class"]) == (
        "runtime", "entry", "init", "command"
    )  # fmt: skip
    assert events[5]["payload"]["from"] == "entry"
    assert events[6]["payload"] == {"count": 1}
    output = {"count": 1, "last_message": {"n": 1}, "messages": [{"n": 1}]}
    assert events[7]["agent_id"] == "collect" and events[7]["result"] == output

    details = (await runtime.get_job(job_id)).value
    job = details["job"]
    assert set(job) == JOB_FIELDS  # no `daemon` on this generation
    assert job["result"] == {"agent_id": "collect", "output": output}
    assert job["placement_policy"] == "local"
    for agent in details["agents"]:
        assert set(agent) == AGENT_FIELDS
        # Agents still read as live once the job is over, and are never flagged paused.
        assert agent["live?"] is True and agent["paused?"] is False
        assert agent["status"] == "ready" and agent["assigned_node"] == "nonode@nohost"
    assert details["summary"]["last_event"] == "job_completed(collect)"
    assert details["summary"]["live?"] is False
    assert [e["type"] for e in details["recent_events"]] == [e["type"] for e in events][::-1]


async def test_a_job_that_no_agent_completes_runs_until_cancelled(runtime: RuntimePort) -> None:
    job_id = await submit(runtime, relay())
    await settle(runtime, job_id, 7)
    await asyncio.sleep(0.3)
    details = (await runtime.get_job(job_id)).value
    assert details["job"]["status"] == "running"
    assert details["job"]["result"] is None  # the core writes it as null until the end
    assert (await runtime.cancel_job(job_id)).status == "cancelled"
    details = (await runtime.get_job(job_id)).value
    assert details["job"]["status"] == "cancelled"
    assert details["job"]["result"] == {"reason": "cancelled by operator"}
    last = (await ended(runtime, job_id))[-1]
    assert set(last) == {"type", "timestamp", "job_id"} and last["type"] == "job_cancelled"
    with pytest.raises(InvalidTransitionError) as refused:
        await runtime.cancel_job(job_id)
    assert refused.value.detail == "job is already in a terminal state"
    for operation in (runtime.pause_job, runtime.resume_job):
        with pytest.raises(CoordinatorGoneError) as gone:
            await operation(job_id)
        assert gone.value.status == "cancelled"


async def test_pause_and_resume_answer_and_refuse_as_the_core_does(runtime: RuntimePort) -> None:
    job_id = await submit(runtime, relay())
    await settle(runtime, job_id, 7)
    with pytest.raises(InvalidTransitionError) as refused:
        await runtime.resume_job(job_id)
    assert refused.value.detail == "job is not paused"
    assert not isinstance(refused.value, CoordinatorGoneError)
    assert (await runtime.pause_job(job_id)).status == "paused"
    with pytest.raises(InvalidTransitionError) as refused:
        await runtime.pause_job(job_id)
    assert refused.value.detail == "job is not running"
    details = (await runtime.get_job(job_id)).value
    assert details["job"]["status"] == "paused"
    assert all(agent["paused?"] is False for agent in details["agents"])
    assert (await runtime.resume_job(job_id)).status == "resumed"
    assert (await runtime.get_job(job_id)).value["job"]["status"] == "running"
    async with asyncio.timeout(10):  # the answer may come before its event is recorded
        while True:
            types = [e["type"] for e in await history(runtime, job_id)]
            if types[-2:] == ["job_paused", "job_resumed"]:
                break
            await asyncio.sleep(0.02)
    await runtime.cancel_job(job_id)


async def test_unknown_jobs_are_not_found(runtime: RuntimePort) -> None:
    ghost = "relay-1000000000000-000000000000"
    for operation in (runtime.get_job, runtime.pause_job, runtime.resume_job, runtime.cancel_job):
        with pytest.raises(JobNotFoundError):
            await operation(ghost)
    for follow in (False, True):
        with pytest.raises(JobNotFoundError):
            async with asyncio.timeout(5):
                async for _ in runtime.stream_events(ghost, follow=follow):
                    pass


async def test_the_calls_this_generation_lacks_are_not_supported(runtime: RuntimePort) -> None:
    job_id = await submit(runtime, relay({"complete_on_message": True}))
    await wait_for_status(runtime, job_id)
    with pytest.raises(NotSupportedError):
        await runtime.clear_jobs()
    with pytest.raises(NotSupportedError):
        await runtime.cancel_all_jobs()
    with pytest.raises(NotSupportedError):
        await runtime.replay_dead_letter(job_id, 4)
    assert (await runtime.get_job(job_id)).value["job"]["status"] == "completed"


async def test_manifest_problems_come_in_the_cores_words(runtime: RuntimePort) -> None:
    with pytest.raises(ManifestInvalidError) as refused:
        await runtime.submit_job("{}", {})
    assert refused.value.errors == [
        "manifest_version is required",
        "graph_id is required",
        "nodes must not be empty",
        "manifest must define at least one entrypoint or one node with role root/root_coordinator",
    ]
    bad = {
        "manifest_version": "1",
        "graph_id": "bad",
        "nodes": [
            {"node_id": "a", "agent_type": "wizard"},
            {"node_id": "a", "agent_type": "router", "type": "reduce"},
        ],
        "edges": [{"from_node": "a", "to_node": "ghost"}],
        "entrypoints": ["zz"],
    }
    with pytest.raises(ManifestInvalidError) as refused:
        await submit(runtime, bad)
    assert refused.value.errors == [
        "duplicate node_id a",
        'unsupported agent_type "wizard" for node a',
        'template type "reduce" is not supported for agent_type "router" on node a',
        "edge unknown must define message_type",
        "edge unknown references missing to_node ghost",
        "entrypoint zz does not reference a known node",
    ]
    # The parser's message arrives quoted from the core; the adapter unquotes it.
    for text, message in (
        ("{nope", 'unexpected byte at position 1: 0x6E ("n")'),
        ("", "unexpected end of input at position 0"),
    ):
        with pytest.raises(ManifestInvalidError) as refused:
            await runtime.submit_job(text, {})
        assert refused.value.errors == [message]


async def test_an_executor_without_a_sandbox_fails_its_job(runtime: RuntimePort) -> None:
    job_id = await submit(runtime, executor())
    assert await wait_for_status(runtime, job_id) == "failed"
    events = await ended(runtime, job_id)
    assert [e["type"] for e in events[4:]] == [*LEASED_RUN, "job_failed"]
    assert events[5]["payload"] == {"pool": "default", "slots": 1}
    assert set(events[6]["payload"]) == {"lease_id", "pool", "queue_wait_ms", "slots"}
    failed = events[-1]
    assert failed["agent_id"] == "run" and failed["reason"] == NO_SANDBOX
    details = (await runtime.get_job(job_id)).value
    assert details["job"]["result"] == {"agent_id": "run", "error": NO_SANDBOX}
    (agent,) = details["agents"]
    assert (agent["status"], agent["last_error"], agent["processed_messages"]) == (
        "error", NO_SANDBOX, 0
    )  # fmt: skip
    assert agent["lease"] == {"lease_id": None, "pool": None, "slots": None}
    assert agent["sandbox_name"] is None
    assert details["summary"]["executor_count"] == 1


async def test_an_executor_on_the_host_runner_completes_its_job(runtime: RuntimePort) -> None:
    job_id = await submit(
        runtime, executor({"runner_module": HOST_LOCAL, "command": ["true"], "complete_job": True})
    )
    assert await wait_for_status(runtime, job_id) == "completed"
    events = await ended(runtime, job_id)
    assert [e["type"] for e in events[4:]] == [
        *LEASED_RUN,
        "sandbox_job_completed",
        "job_completed",
    ]
    sandbox = f"host-local-{job_id}-run"
    ran = events[8]["payload"]
    assert set(ran) == {"attempts", "exit_code", "lease_id", "pool", "sandbox_name"}
    assert (ran["exit_code"], ran["sandbox_name"]) == (0, sandbox)
    result = events[-1]["result"]
    assert result["agent_id"] == "run" and result["input"] == {"x": 1}
    assert result["sandbox"]["exit_code"] == 0
    details = (await runtime.get_job(job_id)).value
    (agent,) = details["agents"]
    assert (agent["status"], agent["sandbox_name"]) == ("completed", sandbox)
    assert details["summary"]["sandbox_names"] == [sandbox]
    assert [s["sandbox_name"] for s in details["sandboxes"]] == [sandbox]


async def test_the_summary_describes_one_unnamed_node(runtime: RuntimePort) -> None:
    summary = (await runtime.system_summary()).value
    (node,) = summary["nodes"]
    assert node["name"] == "nonode@nohost" and node["connected_nodes"] == ["nonode@nohost"]
    assert node["self?"] is True and node["scheduler_hint"] == "cluster_member"
    assert isinstance(node["hardware"]["gpu"], str)
    assert node["hardware"]["cpu"]["architecture"].startswith("x86_64")
    assert node["executor_pools"]["default"]["capacity"] == 4
    assert "metrics" not in summary


async def test_following_polls_a_core_that_ignores_follow(runtime: RuntimePort) -> None:
    job_id = await submit(runtime, relay({"complete_after": 2}, {"entry": [{"n": 1}, {"n": 2}]}))
    positions = []
    async with asyncio.timeout(15):
        async for item in runtime.stream_events(job_id, follow=True, heartbeat_seconds=1):
            if isinstance(item, EventRecord):
                positions.append(item.index)
                last = item.type
    assert positions == list(range(len(positions))) and last == "job_completed"
    assert len(positions) == len(await ended(runtime, job_id))


async def test_listing_is_newest_first_and_leaves_out_finished_jobs(
    runtime: RuntimePort,
) -> None:
    done = await submit(runtime, relay({"complete_on_message": True}))
    await wait_for_status(runtime, done)
    live = await submit(runtime, relay())
    await wait_for_status(runtime, live, {"running"})
    everything = [j["job_id"] for j in (await runtime.list_jobs(0, True)).value["data"]]
    assert everything.index(live) < everything.index(done)
    running = [j["job_id"] for j in (await runtime.list_jobs(0, False)).value["data"]]
    assert live in running and done not in running
    await runtime.cancel_job(live)
