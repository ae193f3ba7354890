"""The jobs routes on the in-memory runtime, through create_app() and the container."""

from __future__ import annotations

import base64

import httpx
import orjson
import pytest

from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.config import Settings
from tests.support import asgi_client, check_problem, pipeline_manifest

API = "/api/v1"


async def _submit(client: httpx.AsyncClient, manifest: dict | None = None, **extra) -> str:
    response = await client.post(
        f"{API}/jobs", json={"manifest": manifest or pipeline_manifest(), **extra}
    )
    assert response.status_code == 201, response.text
    return response.json()["job_id"]


def _assert_problem(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["error"] == code and body["status"] == status
    assert {"type", "title", "detail", "request_id"} <= set(body)
    return check_problem(body)


async def test_submit_answers_201_with_location(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{API}/jobs", json={"manifest": pipeline_manifest()})
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "pending" and body["id"] == body["job_id"]
    assert response.headers["location"] == f"{API}/jobs/{body['job_id']}"


async def test_submit_takes_the_seeds_manifest_json_and_payloads(
    client: httpx.AsyncClient, memory_runtime: InMemoryRuntime
) -> None:
    response = await client.post(
        f"{API}/jobs",
        json={
            "manifest_json": orjson.dumps(pipeline_manifest()).decode(),
            "payloads": {"inputs/a.txt": "hello"},
            "payloads_base64": {"bin/b.dat": base64.b64encode(b"\x00\x01").decode()},
        },
    )
    assert response.status_code == 201
    keys = memory_runtime.payload_keys(response.json()["job_id"])
    assert keys == ["bin/b.dat", "inputs/a.txt"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"manifest": pipeline_manifest(), "manifest_json": "{}"},
        {"manifest_json": "[1, 2]"},
        {"manifest_json": "not json"},
        {"manifest_json": "  "},
        {"manifest": "text"},
        {"manifest": pipeline_manifest(), "payloads_base64": {"a": "%%%"}},
        {"manifest": pipeline_manifest(), "payloads": {"a": "x"}, "payloads_base64": {"a": ""}},
        {"manifest": pipeline_manifest(), "payloads": {"a": 5}},
    ],
)
async def test_malformed_submissions_are_validation_errors(
    client: httpx.AsyncClient, body: dict
) -> None:
    problem = _assert_problem(await client.post(f"{API}/jobs", json=body), 422, "validation_error")
    assert problem["errors"]
    assert (await client.get(f"{API}/jobs")).json()["data"] == []


async def test_manifest_text_that_is_no_json_is_refused_by_the_runtime(
    client: httpx.AsyncClient,
) -> None:
    problem = _assert_problem(
        await client.post(f"{API}/jobs", json={"manifest_json": "{not json"}),
        422,
        "manifest_invalid",
    )
    assert "unexpected byte" in problem["detail"]


async def test_invalid_json_body_is_a_validation_error(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{API}/jobs", content=b"{nope", headers={"content-type": "application/json"}
    )
    _assert_problem(response, 422, "validation_error")


async def test_runtime_refusal_of_a_manifest_is_manifest_invalid(client: httpx.AsyncClient) -> None:
    manifest = pipeline_manifest()
    del manifest["entrypoints"]
    problem = _assert_problem(
        await client.post(f"{API}/jobs", json={"manifest": manifest}), 422, "manifest_invalid"
    )
    assert any("entrypoint" in e["message"] for e in problem["errors"])
    assert {e["code"] for e in problem["errors"]} == {"manifest_invalid"}
    assert "entrypoint" in problem["detail"]


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs", "a\\b", "a//b", "C:/x", "a\x01b", "./a"])
async def test_unsafe_payload_keys_never_reach_the_runtime(
    client: httpx.AsyncClient, key: str
) -> None:
    response = await client.post(
        f"{API}/jobs", json={"manifest": pipeline_manifest(), "payloads": {key: "x"}}
    )
    _assert_problem(response, 422, "unsafe_payload_path")
    assert (await client.get(f"{API}/jobs")).json()["data"] == []


async def test_a_job_runs_and_its_details_events_and_graph_show_it(
    client: httpx.AsyncClient, memory_runtime: InMemoryRuntime
) -> None:
    job_id = await _submit(client)
    memory_runtime.run_until_idle()
    details = (await client.get(f"{API}/jobs/{job_id}")).json()
    assert details["job"]["status"] == "completed"

    events = (await client.get(f"{API}/jobs/{job_id}/events")).json()
    assert [e["type"] for e in events["data"]][-1] == "job_completed"
    assert events["offset"] == 0 and events["next_offset"] is None

    graph = (await client.get(f"{API}/jobs/{job_id}/graph")).json()
    assert [n["id"] for n in graph["nodes"]] == ["collect", "router", "worker"]
    assert [(e["id"], e["count"], e["source_event"]) for e in graph["edges"]] == [
        ("router->worker:task", 1, "manifest+events"),
        ("worker->collect:result", 1, "manifest+events"),
    ]
    assert graph["stats"]["message_count"] == 3
    alias = (await client.get(f"{API}/jobs/{job_id}/agent-graph")).json()
    assert alias["edges"] == graph["edges"]


async def test_declared_edges_show_before_any_traffic(client: httpx.AsyncClient) -> None:
    job_id = await _submit(client)
    graph = (await client.get(f"{API}/jobs/{job_id}/graph")).json()
    assert {e["source_event"] for e in graph["edges"]} == {"manifest"}
    assert all(e["count"] == 0 for e in graph["edges"])


async def test_events_page_by_offset_limit_and_type(
    client: httpx.AsyncClient, memory_runtime: InMemoryRuntime
) -> None:
    job_id = await _submit(client)
    memory_runtime.run_until_idle()
    everything = (await client.get(f"{API}/jobs/{job_id}/events")).json()["data"]
    pages, offset = [], 0
    while offset is not None:
        page = (
            await client.get(f"{API}/jobs/{job_id}/events", params={"offset": offset, "limit": 3})
        ).json()
        assert page["offset"] == offset
        pages.extend(page["data"])
        offset = page["next_offset"]
    assert pages == everything
    typed = (
        await client.get(
            f"{API}/jobs/{job_id}/events", params={"type": "agent_message_received", "limit": 2}
        )
    ).json()
    assert [e["type"] for e in typed["data"]] == ["agent_message_received"] * 2
    assert typed["next_offset"] == 2


@pytest.mark.parametrize(
    ("params", "field"),
    [({"offset": -1}, "offset"), ({"limit": 0}, "limit"), ({"limit": "many"}, "limit")],
)
async def test_bad_paging_is_a_validation_error_naming_the_field(
    client: httpx.AsyncClient, params: dict, field: str
) -> None:
    job_id = await _submit(client)
    problem = _assert_problem(
        await client.get(f"{API}/jobs/{job_id}/events", params=params), 422, "validation_error"
    )
    assert problem["errors"][0]["loc"] == ["query", field]


async def test_unknown_jobs_are_404_on_every_route(client: httpx.AsyncClient) -> None:
    ghost = f"{API}/jobs/ghost-1-000000000000"
    for method, path in [
        ("GET", ""),
        ("GET", "/graph"),
        ("GET", "/events"),
        ("GET", "/dead-letters"),
        ("POST", "/cancel"),
        ("POST", "/pause"),
        ("POST", "/resume"),
        ("POST", "/dead-letters/0/replay"),
    ]:
        response = await client.request(method, ghost + path)
        _assert_problem(response, 404, "job_not_found")


async def test_list_filters_by_status_and_graph(
    client: httpx.AsyncClient, memory_runtime: InMemoryRuntime
) -> None:
    done = await _submit(client)
    memory_runtime.run_until_idle()
    other = {**pipeline_manifest(), "graph_id": "other", "daemon": True}
    live = await _submit(client, other)
    listed = (await client.get(f"{API}/jobs")).json()["data"]
    assert [j["job_id"] for j in listed] == [live, done]
    assert [
        j["job_id"]
        for j in (await client.get(f"{API}/jobs", params={"status": "completed"})).json()["data"]
    ] == [done]
    assert [
        j["job_id"]
        for j in (await client.get(f"{API}/jobs", params={"graph_id": "other"})).json()["data"]
    ] == [live]
    assert [
        j["job_id"]
        for j in (await client.get(f"{API}/jobs", params={"include_terminal": "false"})).json()[
            "data"
        ]
    ] == [live]
    assert len((await client.get(f"{API}/jobs", params={"limit": 1})).json()["data"]) == 1


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 1001}, {"status": "s" * 65}, {"include_terminal": "maybe"}]
)
async def test_bad_list_queries_are_validation_errors(
    client: httpx.AsyncClient, params: dict
) -> None:
    _assert_problem(await client.get(f"{API}/jobs", params=params), 422, "validation_error")


async def test_dead_letters_list_and_replay(
    client: httpx.AsyncClient, memory_runtime: InMemoryRuntime
) -> None:
    job_id = await _submit(client, pipeline_manifest(worker={"simulate": {"drop_first": 1}}))
    memory_runtime.run_until_idle()
    letters = (await client.get(f"{API}/jobs/{job_id}/dead-letters")).json()
    assert letters["job_id"] == job_id
    [letter] = letters["data"]
    assert letter["index"] == 0 and letter["agent_id"] == "worker"
    envelope = letter["message"]["envelope"]
    assert {k: envelope[k] for k in ("from", "to", "type")} == {
        "from": "router",
        "to": "worker",
        "type": "task",
    }
    assert set(letter) == {"index", "event_index", "agent_id", "reason", "timestamp", "message"}

    replay = await client.post(f"{API}/jobs/{job_id}/dead-letters/0/replay")
    assert replay.status_code == 202
    assert replay.json() == {
        "job_id": job_id,
        "index": 0,
        "event_index": letter["event_index"],
        "agent_id": "worker",
        "status": "replayed",
    }
    memory_runtime.run_until_idle()
    graph = (await client.get(f"{API}/jobs/{job_id}/graph")).json()
    assert {e["id"]: e["count"] for e in graph["edges"]}["worker->collect:result"] == 1
    _assert_problem(
        await client.post(f"{API}/jobs/{job_id}/dead-letters/0/replay"), 409, "conflict"
    )
    _assert_problem(
        await client.post(f"{API}/jobs/{job_id}/dead-letters/1/replay"),
        404,
        "dead_letter_not_found",
    )
    _assert_problem(
        await client.post(f"{API}/jobs/{job_id}/dead-letters/-1/replay"), 422, "validation_error"
    )


async def test_pause_resume_cancel_and_their_conflicts(
    client: httpx.AsyncClient, memory_runtime: InMemoryRuntime
) -> None:
    job_id = await _submit(client, {**pipeline_manifest(), "daemon": True})
    base = f"{API}/jobs/{job_id}"
    # Only a running job can be paused.
    _assert_problem(await client.post(f"{base}/pause"), 409, "invalid_transition")
    memory_runtime.run_until_idle()
    assert (await client.post(f"{base}/pause")).json() == {"status": "paused", "job_id": job_id}
    _assert_problem(await client.post(f"{base}/pause"), 409, "invalid_transition")
    assert (await client.post(f"{base}/resume")).json()["status"] == "resumed"
    assert (await client.post(f"{base}/cancel")).json() == {"status": "cancelled", "job_id": job_id}
    for action in ("pause", "resume"):
        _assert_problem(await client.post(f"{base}/{action}"), 409, "invalid_transition")


@pytest.mark.parametrize(
    ("method", "path"), [("DELETE", "/jobs"), ("POST", "/jobs/cleanup"), ("POST", "/jobs:cleanup")]
)
async def test_clear_removes_finished_jobs_on_every_alias(
    client: httpx.AsyncClient, memory_runtime: InMemoryRuntime, method: str, path: str
) -> None:
    await _submit(client)
    memory_runtime.run_until_idle()
    live = await _submit(client, {**pipeline_manifest(), "daemon": True})
    response = await client.request(method, f"{API}{path}")
    assert response.status_code == 200 and response.json() == {"cleared_count": 1}
    assert [j["job_id"] for j in (await client.get(f"{API}/jobs")).json()["data"]] == [live]


async def test_unknown_routes_and_methods_are_problems(client: httpx.AsyncClient) -> None:
    _assert_problem(await client.get(f"{API}/nowhere"), 404, "not_found")
    _assert_problem(await client.put(f"{API}/jobs"), 405, "method_not_allowed")


async def test_requirements_the_runtime_cannot_meet_are_412(client: httpx.AsyncClient) -> None:
    manifest = {**pipeline_manifest(), "requirements": {"gpu": 2}}
    response = await client.post(f"{API}/jobs", json={"manifest": manifest})
    problem = _assert_problem(response, 412, "requirements_not_met")
    assert problem["detail"] == "requirements_not_met: gpu=2 available=0"
    assert problem["errors"] == [
        {"code": "requirements_not_met", "message": "requirements_not_met: gpu=2 available=0"}
    ]


@pytest.mark.parametrize("spelling", ["?include={}", "?include={}&include={}"])
async def test_include_cuts_the_details_down_on_both_paths(
    client: httpx.AsyncClient, memory_runtime: InMemoryRuntime, spelling: str
) -> None:
    """Plain requests are answered in front of the framework, a repeated parameter by its
    route: both give the same parts."""
    job_id = await _submit(client)
    memory_runtime.run_until_idle()
    whole = (await client.get(f"{API}/jobs/{job_id}")).json()
    assert {"job", "summary", "agents", "recent_events"} <= set(whole)
    parts = {}
    for include in ("full", "summary", "compact"):
        answer = await client.get(f"{API}/jobs/{job_id}" + spelling.format(include, include))
        assert answer.status_code == 200, answer.text
        parts[include] = answer.json()
    assert parts["full"] == whole
    assert parts["summary"] == {"job": whole["job"], "summary": whole["summary"]}
    assert parts["compact"] == {"job": whole["job"]}
    refused = await client.get(f"{API}/jobs/{job_id}?include=everything")
    _assert_problem(refused, 422, "validation_error")


async def test_recent_events_are_filled_where_the_core_leaves_them_empty(
    settings: Settings,
) -> None:
    runtime = InMemoryRuntime(release="1.2.31", auto_run=False)
    assert runtime.release.recent_events == 0  # the core sends an empty list
    async with asgi_client(settings, runtime) as client:
        job_id = await _submit(client)
        runtime.run_until_idle()
        details = (await client.get(f"{API}/jobs/{job_id}")).json()
        history = (await client.get(f"{API}/jobs/{job_id}/events")).json()["data"]
    assert details["recent_events"] == list(reversed(history))[:25]
    assert details["recent_events"][0]["type"] == "job_completed"
