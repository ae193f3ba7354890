"""The gateway over HTTP in front of the real core (d26bef71) and of its simulation.

Each test runs in front of the real core and in front of mn-fake-core with the `d26bef71`
profile: the answers a client gets must be the same, and right for this core generation.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mn_api.application.ports import RuntimePort
from mn_api.config import Settings
from tests.contract.conftest import generation_a, wait_for_status
from tests.contract.test_generation_a_contract import relay
from tests.contract.test_http_contract import nulls
from tests.support import asgi_client, check_problem
from tests.support.realcore import RealCore

API = "/api/v1"
GHOST = "relay-1000000000000-000000000000"


@pytest.fixture(params=["real", "simulated"])
async def runtime(request: pytest.FixtureRequest) -> AsyncIterator[RuntimePort]:
    kind = "real" if request.param == "real" else "grpc"
    core = request.getfixturevalue("real_core") if kind == "real" else None
    async with generation_a(kind, core) as runtime:
        yield runtime


@pytest.fixture
async def client(runtime: RuntimePort, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with _gateway(runtime, tmp_path) as client:
        yield client


def _gateway(runtime: RuntimePort, tmp_path: Path) -> Any:
    settings = Settings(
        runtime="grpc", bundle_dir=tmp_path / "bundles", log_path=str(tmp_path / "api.log")
    )
    return asgi_client(settings, runtime, lifespan=True)


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["error"] == code, body
    return check_problem(body)


async def run(client: httpx.AsyncClient, manifest: dict[str, Any]) -> str:
    response = await client.post(f"{API}/jobs", json={"manifest": manifest})
    assert response.status_code in (200, 201, 202), response.text
    return response.json()["job_id"]


async def test_pausing_or_resuming_an_unknown_job_is_not_found(
    client: httpx.AsyncClient,
) -> None:
    for action in ("pause", "resume", "cancel"):
        body = problem(await client.post(f"{API}/jobs/{GHOST}/{action}"), 404, "job_not_found")
        assert GHOST in body["detail"]


async def test_pausing_a_finished_job_is_a_conflict_that_says_why(
    client: httpx.AsyncClient, runtime: RuntimePort
) -> None:
    job_id = await run(client, relay({"complete_on_message": True}))
    assert await wait_for_status(runtime, job_id) == "completed"
    for action in ("pause", "resume"):
        body = problem(
            await client.post(f"{API}/jobs/{job_id}/{action}"), 409, "invalid_transition"
        )
        assert body["detail"] == (
            f"job {job_id!r} has ended (completed): it can no longer be paused or resumed"
        )
    body = problem(await client.post(f"{API}/jobs/{job_id}/cancel"), 409, "invalid_transition")
    assert body["detail"] == "job is already in a terminal state"


async def test_the_cores_parser_message_reaches_the_problem_unquoted(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(f"{API}/jobs", json={"manifest_json": "{nope"})
    body = problem(response, 422, "manifest_invalid")
    assert body["errors"] == [
        {"code": "manifest_invalid", "message": 'unexpected byte at position 1: 0x6E ("n")'}
    ]
    assert body["detail"] == 'unexpected byte at position 1: 0x6E ("n")'


async def test_what_the_core_lacks_answers_not_implemented(client: httpx.AsyncClient) -> None:
    for method, path, call in (
        ("DELETE", "/jobs", "ClearJobs"),
        ("POST", "/jobs/cleanup", "ClearJobs"),
        ("POST", "/jobs:cleanup", "ClearJobs"),
        ("POST", "/system/cluster/nodes:leave", "RemoveNode"),
    ):
        body = problem(await client.request(method, API + path), 501, "not_supported")
        assert body["detail"] == f"{call} is not supported by this core", path


@pytest.mark.parametrize("path", ["/jobs:cancel-all", "/jobs/cancel-all"])
async def test_cancel_all_cancels_each_live_job_where_the_core_has_no_call_for_it(
    client: httpx.AsyncClient, runtime: RuntimePort, path: str
) -> None:
    waiting = [await run(client, relay()) for _ in range(2)]
    for job_id in waiting:
        await wait_for_status(runtime, job_id, {"running"})
    answer = await client.post(API + path)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["via"] == "CancelJob" and body["status"] == "cancelled"
    assert set(waiting) <= set(body["cancelled_job_ids"]) == set(body["job_ids"])
    assert body["cancelled_count"] == len(body["cancelled_job_ids"]) == body["active_count"]
    assert "failed" not in body
    for job_id in waiting:
        assert await wait_for_status(runtime, job_id) == "cancelled"
    again = (await client.post(API + path)).json()
    assert again["status"] == "no_active_jobs" and again["active_count"] == 0


async def test_workflow_progress_of_a_finished_and_a_waiting_job(
    client: httpx.AsyncClient, runtime: RuntimePort
) -> None:
    done = await run(client, relay({"complete_on_message": True}, {"entry": [{"n": 1}]}))
    await wait_for_status(runtime, done)
    await _last_event(client, done)
    progress = (await client.get(f"{API}/jobs/{done}/workflow-progress")).json()
    assert progress["status"] == "completed"
    assert {a["id"]: a["status"] for a in progress["agents"]} == {
        "entry": "done",
        "collect": "done",
    }
    assert progress["layers"] == [["entry"], ["collect"]]
    # The core's own start message is no agent of the workflow.
    assert "runtime" not in {a["id"] for a in progress["agents"]}
    waiting = await run(client, relay())
    await wait_for_status(runtime, waiting, {"running"})
    live = (await client.get(f"{API}/jobs/{waiting}/workflow-progress")).json()
    assert live["status"] == "running" and live["agent_count"]["total"] == 2
    await client.post(f"{API}/jobs/{waiting}/cancel")


HOST_LOCAL = "MirrorNeuron.Runner.HostLocal"


def _fan_out(seconds: dict[str, int]) -> dict[str, Any]:
    """router -> executors (each a host command lasting its `seconds`) -> aggregator, which
    completes the job once every executor's result came."""
    nodes: list[dict[str, Any]] = [{"node_id": "router", "agent_type": "router"}]
    edges = []
    for worker, lasts in seconds.items():
        config = {
            "runner_module": HOST_LOCAL,
            "command": ["sleep", str(lasts)],
            "simulate": {"run_ms": lasts * 1000},  # the same command, simulated
        }
        nodes.append({"node_id": worker, "agent_type": "executor", "config": config})
        edges.append({"from_node": "router", "to_node": worker, "message_type": "init"})
        edges.append({"from_node": worker, "to_node": "collect", "message_type": "executor_result"})
    collect = {"complete_after": len(seconds)}
    nodes.append({"node_id": "collect", "agent_type": "aggregator", "config": collect})
    return {
        "manifest_version": "1",
        "graph_id": "fan-out",
        "nodes": nodes,
        "edges": edges,
        "entrypoints": ["router"],
        "initial_inputs": {"router": [{"n": 1}]},
    }


async def test_a_step_is_done_once_its_work_is_not_when_the_job_ends(
    client: httpx.AsyncClient, runtime: RuntimePort
) -> None:
    """The router hands the message on as it takes it; an executor is done once its command
    ran (`sandbox_job_completed`), the aggregator once it recorded the result
    (`aggregator_received`): all while the slower executor still runs."""
    job_id = await run(client, _fan_out({"quick": 1, "slow": 4}))
    seen: list[dict[str, str]] = []
    async with asyncio.timeout(30):
        while True:
            progress = (await client.get(f"{API}/jobs/{job_id}/workflow-progress")).json()
            if progress["status"] not in ("pending", "running"):
                break
            seen.append({a["id"]: a["status"] for a in progress["agents"]})
            await asyncio.sleep(0.1)
    assert await wait_for_status(runtime, job_id) == "completed"
    midway = {"router": "done", "quick": "done", "slow": "running", "collect": "done"}
    assert midway in seen, seen[-5:]
    # Nothing done goes back to running while the job runs.
    later = seen[seen.index(midway) :]
    assert all(s["quick"] == "done" and s["router"] == "done" for s in later)
    assert seen[0]["slow"] in ("idle", "running") and seen[0]["quick"] in ("idle", "running")


async def test_the_graph_counts_the_start_message_instead_of_drawing_the_runtime(
    client: httpx.AsyncClient, runtime: RuntimePort
) -> None:
    job_id = await run(client, relay({"complete_on_message": True}, {"entry": [{"n": 1}]}))
    await wait_for_status(runtime, job_id)
    await _last_event(client, job_id)
    for route in ("graph", "agent-graph"):
        graph = (await client.get(f"{API}/jobs/{job_id}/{route}")).json()
        nodes = {node["id"]: node for node in graph["nodes"]}
        assert set(nodes) == {"entry", "collect"}
        assert nodes["entry"]["start_messages"] == 1 and "start_messages" not in nodes["collect"]
        assert [(e["source"], e["target"], e["count"]) for e in graph["edges"]] == [
            ("entry", "collect", 1)
        ]
        assert graph["stats"]["message_count"] == 2


async def test_a_completed_jobs_result_passes_through_and_no_answer_holds_null(
    client: httpx.AsyncClient, runtime: RuntimePort
) -> None:
    done = await run(client, relay({"complete_on_message": True}, {"entry": [{"n": 1}]}))
    live = await run(client, relay())
    await wait_for_status(runtime, done)
    await wait_for_status(runtime, live, {"running"})
    output = {"count": 1, "last_message": {"n": 1}, "messages": [{"n": 1}]}
    completed = await _last_event(client, done)
    assert completed["type"] == "job_completed"
    assert completed["agent_id"] == "collect" and completed["result"] == output
    details = (await client.get(f"{API}/jobs/{done}")).json()
    assert details["job"]["result"] == {"agent_id": "collect", "output": output}
    running = (await client.get(f"{API}/jobs/{live}")).json()
    assert "result" not in running["job"]  # written as null by the core while it runs
    assert all(agent["paused"] is False for agent in running["agents"])
    assert (await client.post(f"{API}/jobs/{live}/pause")).status_code == 200
    paused = (await client.get(f"{API}/jobs/{live}")).json()
    # The core leaves `paused?` false on a paused job's agents; the view says what it means.
    assert all(a["paused?"] is False and a["paused"] is True for a in paused["agents"])
    for job_id in (done, live):
        for path in ("", "/graph", "/events", "/dead-letters"):
            answer = (await client.get(f"{API}/jobs/{job_id}{path}")).json()
            assert list(nulls(answer)) == [], (path, answer)
    assert list(nulls((await client.get(f"{API}/system/summary")).json())) == []
    assert (await client.post(f"{API}/jobs/{live}/cancel")).json()["status"] == "cancelled"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"manifest_json": "[1, 2]"}, "validation_error"),
        ({"manifest_json": '"a manifest"'}, "validation_error"),
        ({"manifest": [{"graph_id": "x"}]}, "validation_error"),
        # The core writes payloads where their keys say, outside its folder too.
        ({"manifest": relay(), "payloads": {"../../escaped.txt": "x"}}, "unsafe_payload_path"),
    ],
)
async def test_what_would_crash_or_escape_the_core_never_reaches_it(
    client: httpx.AsyncClient, request: pytest.FixtureRequest, body: dict[str, Any], code: str
) -> None:
    """A generation A core's SubmitJob handler crashes on a manifest that is no object, and
    writes payloads to whatever path their keys name."""
    core: RealCore | None = (
        request.getfixturevalue("real_core") if "real" in request.node.callspec.id else None
    )
    written = _bundles(core)
    response = await client.post(f"{API}/jobs", json=body)
    problem(response, 422, code)
    assert _bundles(core) == written  # the core wrote no submission: it never saw this one
    assert (await client.get(f"{API}/system/summary")).status_code == 200


def _bundles(core: RealCore | None) -> int:
    """How many submissions the real core has written to its folder."""
    if core is None:
        return 0
    return sum(1 for _ in (core.workdir / "tmp").glob("bundle_*"))


@pytest.fixture(params=["real", "simulated"])
async def orphaning(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[RuntimePort, RealCore | None]]:
    """A runtime whose jobs lose their coordinator: a real core of the test's own, to
    restart under its jobs, or the simulation of a lost coordinator."""
    if request.param == "simulated":
        async with generation_a("grpc") as runtime:
            yield runtime, None
        return
    core = RealCore(tmp_path).start()
    async with generation_a("real", core) as runtime:
        yield runtime, core
    core.stop()


@pytest.mark.slow
async def test_a_job_orphaned_by_a_core_restart_is_reported_and_cancel_ends_it(
    orphaning: tuple[RuntimePort, RealCore | None], tmp_path: Path
) -> None:
    """After a quick restart the core keeps the job `running` for good, its agents silent;
    within seconds it marks the job not live. The gateway says so, pause and resume are
    refused with the reason, and cancel force-writes the job cancelled."""
    runtime, core = orphaning
    manifest: dict[str, Any] = {
        "manifest_version": "1",
        "graph_id": "orphan",
        "nodes": [{"node_id": "watch", "agent_type": "sensor"}],
        "edges": [],
        "entrypoints": ["watch"],
    }
    if core is None:
        manifest["metadata"] = {"simulate": {"coordinator_lost": True}}
    async with _gateway(runtime, tmp_path) as client:
        job_id = await run(client, manifest)
        await wait_for_status(runtime, job_id, {"running"})
        if core is not None:
            await asyncio.sleep(0.5)
            await asyncio.to_thread(core.restart)
        details = await _when_orphaned(client, job_id)
        assert details["job"]["status"] == "running"
        orphaned = details["job"]["orphaned"]
        assert "cancelling ends it" in orphaned["detail"]
        assert orphaned["last_heartbeat_at"] == details["agents"][0]["last_heartbeat_at"]
        for action in ("pause", "resume"):
            response = await client.post(f"{API}/jobs/{job_id}/{action}")
            body = problem(response, 409, "invalid_transition")
            assert "no coordinator runs it" in body["detail"] and "running" in body["detail"]
        cancelled = await client.post(f"{API}/jobs/{job_id}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "force cancelled"
        details = (await client.get(f"{API}/jobs/{job_id}")).json()
        assert details["job"]["status"] == "cancelled" and "orphaned" not in details["job"]


async def _when_orphaned(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    async with asyncio.timeout(30):
        while True:
            details = (await client.get(f"{API}/jobs/{job_id}")).json()
            if "orphaned" in details["job"]:
                return details
            await asyncio.sleep(0.5)


async def _last_event(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    """A finished job's last event, once recorded (the real core records the job's status a
    moment before the event that ended it)."""
    async with asyncio.timeout(10):
        while True:
            events = (await client.get(f"{API}/jobs/{job_id}/events")).json()["data"]
            if events[-1]["type"] in ("job_completed", "job_failed", "job_cancelled"):
                return events[-1]
            await asyncio.sleep(0.05)
