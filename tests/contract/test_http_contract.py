"""Every route over HTTP, in front of each release profile, in process and through gRPC.

The gateway must answer the same whatever the core behind it: heartbeats are never events,
each event keeps one position, unknown jobs are 404, refused transitions 409, and no answer
holds a `null` where a client expects a value (CORE.md §11).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from dependency_injector import providers

from mn_api.application.ports import RuntimePort
from mn_api.config import Settings
from mn_api.container import Container, build_container
from mn_api.entrypoints.http import create_app
from tests.contract.conftest import Capabilities, submit, wait_for_status
from tests.contract.test_runtime_contract import slow_worker
from tests.support import pipeline_manifest

API = "/api/v1"

# Where a `null` is allowed: the end of a history, and what a real core itself writes as
# null inside the documents the gateway passes on (CORE.md §6).
NULLABLE_KEYS = {"next_offset", "last_error", "lease", "stream"}


@pytest.fixture
def container(runtime: RuntimePort, tmp_path: Path) -> Container:
    settings = Settings(
        runtime="memory",
        bundle_dir=tmp_path / "bundles",
        log_path=str(tmp_path / "api.log"),
        sse_heartbeat_seconds=0.05,
    )
    container = build_container(settings)
    container.core.override(providers.Object(runtime))
    return container


@pytest.fixture
async def client(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(container)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gateway.test", timeout=15
        ) as client,
    ):
        yield client


def nulls(value: Any, path: str = "") -> Iterator[str]:
    """Every path in `value` whose member is null, outside the keys allowed one."""
    if isinstance(value, dict):
        for key, item in value.items():
            if item is None and key not in NULLABLE_KEYS:
                yield f"{path}.{key}"
            else:
                yield from nulls(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if item is None:
                yield f"{path}[{index}]"
            else:
                yield from nulls(item, f"{path}[{index}]")


def test_the_null_finder_finds_nulls() -> None:
    found = list(nulls({"a": [{"type": None}], "next_offset": None, "b": {"c": [None]}}))
    assert found == [".a[0].type", ".b.c[0]"]


def sse_events(text: str) -> list[dict[str, str]]:
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if line and not line.startswith(":") and ":" in line:
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
        if "data" in fields:
            events.append(fields)
    return events


async def post_job(client: httpx.AsyncClient, manifest: dict[str, Any]) -> str:
    response = await client.post(f"{API}/jobs", json={"manifest": manifest})
    assert response.status_code == 201, response.text
    return response.json()["job_id"]


async def history(client: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"{API}/jobs/{job_id}/events")
    assert response.status_code == 200
    return response.json()["data"]


async def jobs_in_every_state(runtime: RuntimePort, client: httpx.AsyncClient) -> dict[str, str]:
    """A job in each state a client can meet, by name."""
    jobs = {
        "completed": await submit(runtime, pipeline_manifest()),
        "failed": await submit(runtime, pipeline_manifest(worker={"simulate": {"fail": True}})),
        "dead_lettered": await submit(
            runtime, pipeline_manifest(worker={"simulate": {"drop_first": 1}})
        ),
        "paused": await submit(runtime, slow_worker()),
        "cancelled": await submit(runtime, slow_worker()),
        "running": await submit(runtime, {**pipeline_manifest(), "daemon": True}),
    }
    for name in ("paused", "cancelled", "running"):
        await wait_for_status(runtime, jobs[name], {"running"})
    assert (await client.post(f"{API}/jobs/{jobs['paused']}/pause")).status_code == 200
    assert (await client.post(f"{API}/jobs/{jobs['cancelled']}/cancel")).status_code == 200
    for name in ("completed", "failed", "dead_lettered", "cancelled"):
        await wait_for_status(runtime, jobs[name])
    # Pending for the rest of the test: the scheduler takes a minute to find room.
    jobs["pending"] = await submit(runtime, slow_worker(scheduling_ms=60_000))
    return jobs


async def test_no_answer_holds_a_null(runtime: RuntimePort, client: httpx.AsyncClient) -> None:
    jobs = await jobs_in_every_state(runtime, client)
    paths = [
        f"{API}/health",
        f"{API}/ready",
        f"{API}/jobs",
        f"{API}/jobs?status=running",
        f"{API}/jobs?include_terminal=false",
        f"{API}/system/summary",
        f"{API}/metrics",
    ]
    for job_id in jobs.values():
        paths += [
            f"{API}/jobs/{job_id}",
            f"{API}/jobs/{job_id}/graph",
            f"{API}/jobs/{job_id}/agent-graph",
            f"{API}/jobs/{job_id}/events",
            f"{API}/jobs/{job_id}/events?limit=2",
            f"{API}/jobs/{job_id}/events?tail=3",
            f"{API}/jobs/{job_id}/dead-letters",
            f"{API}/jobs/{job_id}/webhooks",
        ]
    found = {}
    for path in paths:
        response = await client.get(path)
        assert response.status_code == 200, (path, response.text)
        bad = list(nulls(response.json()))
        if bad:
            found[path] = bad
    for job_id in jobs.values():
        # The history as a stream, in both of its forms.
        sse = await client.get(f"{API}/jobs/{job_id}/events/stream", params={"follow": "false"})
        for event in sse_events(sse.text):
            if event.get("event", "message") == "message":
                bad = list(nulls(orjson.loads(event["data"])))
                if bad:
                    found[f"SSE {job_id} {event['id']}"] = bad
        ndjson = await client.get(
            f"{API}/jobs/{job_id}/events/stream",
            params={"follow": "false"},
            headers={"Accept": "application/x-ndjson"},
        )
        for line in filter(None, ndjson.text.split("\n")):
            bad = list(nulls(orjson.loads(line)))
            if bad:
                found[f"NDJSON {job_id}"] = bad
    assert found == {}
    await client.post(f"{API}/jobs/{jobs['running']}/cancel")
    await client.post(f"{API}/jobs/{jobs['paused']}/cancel")


async def test_job_details_carry_what_the_web_ui_reads(
    runtime: RuntimePort, client: httpx.AsyncClient
) -> None:
    job_id = await post_job(client, pipeline_manifest())
    await wait_for_status(runtime, job_id)
    details = (await client.get(f"{API}/jobs/{job_id}")).json()
    agents = {agent["agent_id"]: agent for agent in details["agents"]}
    assert {a: agents[a]["type"] for a in agents} == {
        "router": "generic",
        "worker": "map",
        "collect": "generic",
    }
    assert agents["router"]["metadata"]["outbound_edges"] == ["worker"]
    assert agents["collect"]["metadata"]["outbound_edges"] == []
    for agent in agents.values():
        assert agent["running"] is agent["running?"]
        assert agent["paused"] is agent["paused?"]
    for field in ("executor_count", "active_executors", "live?", "nodes", "last_event"):
        assert field in details["summary"]
    listed = (await client.get(f"{API}/jobs")).json()["data"]
    for field in ("executor_count", "active_executors", "live?", "nodes", "last_event"):
        assert field in listed[0]
    nodes = (await client.get(f"{API}/system/summary")).json()["nodes"]
    assert nodes and all(node["self"] is node["self?"] for node in nodes)
    health = (await client.get(f"{API}/health")).json()
    assert health["api_contract"] == "mirrorneuron.rest.v1"


async def test_the_graph_shows_declared_edges_before_any_message(
    runtime: RuntimePort, client: httpx.AsyncClient
) -> None:
    job_id = await post_job(client, slow_worker())
    graph = (await client.get(f"{API}/jobs/{job_id}/graph")).json()
    assert {edge["id"] for edge in graph["edges"]} >= {
        "router->worker:task",
        "worker->collect:result",
    }
    assert {node["id"] for node in graph["nodes"]} == {"router", "worker", "collect"}
    await client.post(f"{API}/jobs/{job_id}/cancel")


async def test_sse_ids_are_positions_through_heartbeats_and_resume_exactly(
    runtime: RuntimePort, client: httpx.AsyncClient
) -> None:
    job_id = await submit(runtime, slow_worker(duplicate_boundary=True))
    await wait_for_status(runtime, job_id, {"running"})
    async with asyncio.timeout(15):
        live = await client.get(f"{API}/jobs/{job_id}/events/stream")
    events = sse_events(live.text)
    assert events[-1]["event"] == "end"
    ids = [int(e["id"]) for e in events if e.get("event", "message") == "message"]
    stored = await history(client, job_id)
    assert ids == list(range(len(stored)))
    assert [orjson.loads(e["data"]) for e in events[:-1]] == stored
    assert all(event["type"] != "stream_heartbeat" for event in stored)
    middle = len(stored) // 2
    again = await client.get(
        f"{API}/jobs/{job_id}/events/stream", headers={"Last-Event-ID": str(middle)}
    )
    rest = [int(e["id"]) for e in sse_events(again.text) if e.get("event", "message") == "message"]
    assert rest == list(range(middle + 1, len(stored)))


async def test_tail_gives_the_last_events_at_their_positions(
    runtime: RuntimePort, client: httpx.AsyncClient
) -> None:
    job_id = await submit(runtime, pipeline_manifest())
    await wait_for_status(runtime, job_id)
    stored = await history(client, job_id)
    page = (await client.get(f"{API}/jobs/{job_id}/events", params={"tail": 3})).json()
    assert page == {"data": stored[-3:], "offset": len(stored) - 3, "next_offset": None}
    everything = (await client.get(f"{API}/jobs/{job_id}/events", params={"tail": 10_000})).json()
    assert everything["data"] == stored and everything["offset"] == 0
    messages = [e for e in stored if e["type"] == "agent_message_received"]
    typed = await client.get(
        f"{API}/jobs/{job_id}/events", params={"tail": 1, "type": "agent_message_received"}
    )
    assert typed.json()["data"] == messages[-1:]
    assert typed.json()["offset"] == len(messages) - 1
    stream = await client.get(
        f"{API}/jobs/{job_id}/events/stream", params={"tail": 2, "follow": "false"}
    )
    tailed = [e for e in sse_events(stream.text) if e.get("event", "message") == "message"]
    assert [int(e["id"]) for e in tailed] == [len(stored) - 2, len(stored) - 1]
    mixed = await client.get(f"{API}/jobs/{job_id}/events", params={"tail": 2, "offset": 1})
    assert mixed.status_code == 422 and mixed.json()["error"] == "validation_error"


async def test_unknown_jobs_are_404_on_every_route(client: httpx.AsyncClient) -> None:
    unknown = "no-such-job-1764341290123-3f9a0c1d2e4b"
    for method, path in [
        ("GET", ""),
        ("GET", "/graph"),
        ("GET", "/events"),
        ("GET", "/events?tail=2"),
        ("GET", "/events/stream"),
        ("GET", "/events/stream?follow=false"),
        ("GET", "/dead-letters"),
        ("POST", "/pause"),
        ("POST", "/resume"),
        ("POST", "/cancel"),
    ]:
        async with asyncio.timeout(10):
            response = await client.request(method, f"{API}/jobs/{unknown}{path}")
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"] == "job_not_found"


async def test_refused_transitions_are_409(
    runtime: RuntimePort, client: httpx.AsyncClient, capabilities: Capabilities
) -> None:
    done = await submit(runtime, pipeline_manifest())
    await wait_for_status(runtime, done)
    for action in ("pause", "resume"):
        response = await client.post(f"{API}/jobs/{done}/{action}")
        assert response.status_code == 409, (action, response.text)
        assert response.json()["error"] == "invalid_transition"
    cancel = await client.post(f"{API}/jobs/{done}/cancel")
    if capabilities.cancel_of_terminal_succeeds:
        assert cancel.json() == {"status": "cancelled", "job_id": done}
    else:
        assert cancel.status_code == 409 and cancel.json()["error"] == "invalid_transition"
    running = await submit(runtime, slow_worker())
    await wait_for_status(runtime, running, {"running"})
    resume = await client.post(f"{API}/jobs/{running}/resume")
    if capabilities.resume_of_running_succeeds:
        assert resume.json() == {"status": "resumed", "job_id": running}
    else:
        assert resume.status_code == 409 and resume.json()["error"] == "invalid_transition"
    cancel = await client.post(f"{API}/jobs/{running}/cancel")
    expected = {"cancellation_pending"} if capabilities.cancellation_pending else {"cancelled"}
    assert cancel.status_code == 200 and cancel.json()["status"] in expected | {"cancelled"}


async def test_clearing_finished_jobs_reaches_the_core(
    runtime: RuntimePort, client: httpx.AsyncClient, container: Container
) -> None:
    done = await post_job(client, pipeline_manifest())
    await wait_for_status(runtime, done)
    topologies = container.topology_store()
    assert await topologies.load(done) is not None
    for path in ("DELETE /jobs", "POST /jobs/cleanup", "POST /jobs:cleanup"):
        method, route = path.split()
        response = await client.request(method, f"{API}{route}")
        assert response.status_code == 200, (path, response.text)
    assert (await client.get(f"{API}/jobs/{done}")).status_code == 404
    assert await topologies.load(done) is None  # purged with the job


async def test_manifest_problems_are_listed_one_by_one(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{API}/jobs", json={"manifest": {"nodes": [{"node_id": "a", "agent_type": "robot"}]}}
    )
    assert response.status_code == 422
    problem = response.json()
    assert problem["error"] == "manifest_invalid"
    assert len(problem["errors"]) >= 3
    assert any("manifest_version" in item for item in map(str, problem["errors"]))
    assert any("graph_id" in item for item in map(str, problem["errors"]))
