"""Job definitions and runs over HTTP (/api/v2), on the 1.2.31 core and on cores without
them, through the in-memory runtime and through mn-fake-core over gRPC."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.config import Settings
from tests.support import asgi_client, check_problem, daemon_manifest, pipeline_manifest
from tests.support.stand_ins import StandInSchedules

V2 = "/api/v2"
API = "/api/v1"


def _problem(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = check_problem(response.json())
    assert body["error"] == error, body
    return body


async def _create(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    if "manifest_json" not in body:
        body.setdefault("manifest", daemon_manifest())
    response = await client.post(f"{V2}/jobs", json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_definition_from_creation_to_deletion(client: httpx.AsyncClient) -> None:
    created = await client.post(
        f"{V2}/jobs",
        json={
            "manifest": daemon_manifest(),
            "job_id": "demo-stable",
            "payloads": {"inputs/a.txt": "alpha"},
            "payloads_base64": {"bin/b.dat": base64.b64encode(b"\x00\xff").decode()},
            "resolved_configuration": {"llm": {"temperature": 0}},
        },
    )
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"{V2}/jobs/demo-stable"
    summary = created.json()
    assert summary["job_id"] == "demo-stable" and summary["status"] == "active"
    assert summary["version"] == 2 and summary["run_count"] == 0
    detail = (await client.get(f"{V2}/jobs/demo-stable")).json()
    assert detail["resolved_configuration"] == {"llm": {"temperature": 0}}
    assert detail["schedule_ids"] == [] and detail["storage"] == {"resources": []}
    text = await _create(
        client,
        manifest_json='{"manifest_version": "1", "graph_id": "t", '
        '"nodes": [{"node_id": "a", "agent_type": "router"}], "entrypoints": ["a"]}',
    )
    assert text["job_id"].startswith("job_t-")
    listed = (await client.get(f"{V2}/jobs")).json()
    assert [d["job_id"] for d in listed["data"]] == sorted(["demo-stable", text["job_id"]])
    patched = await client.patch(
        f"{V2}/jobs/demo-stable", json={"attrs": {"job_name": "renamed", "status": "archived"}}
    )
    assert patched.status_code == 200 and patched.json()["job_name"] == "renamed"
    assert patched.json()["status"] == "active"
    archived = await client.post(f"{V2}/jobs/demo-stable/archive")
    assert archived.status_code == 200 and archived.json()["status"] == "archived"
    assert [d["job_id"] for d in (await client.get(f"{V2}/jobs")).json()["data"]] == [
        text["job_id"]
    ]
    everything = await client.get(f"{V2}/jobs", params={"include_archived": "true"})
    assert len(everything.json()["data"]) == 2
    reset = await client.post(f"{V2}/jobs/demo-stable/data:reset")
    assert reset.status_code == 200 and reset.json()["data_generation"] == 2
    _problem(await client.delete(f"{V2}/jobs/demo-stable"), 422, "validation_error")
    unconfirmed = await client.request(
        "DELETE", f"{V2}/jobs/demo-stable", json={"confirmed": False}
    )
    _problem(unconfirmed, 422, "validation_error")
    deleted = await client.request("DELETE", f"{V2}/jobs/demo-stable", json={"confirmed": True})
    assert deleted.json() == {"job_id": "demo-stable", "status": "deleted", "version": 2}
    gone = await client.request("DELETE", f"{V2}/jobs/{text['job_id']}", json={"confirmed": True})
    assert gone.status_code == 200
    _problem(await client.get(f"{V2}/jobs/demo-stable"), 404, "job_definition_not_found")


async def test_runs_of_a_definition(
    client: httpx.AsyncClient, memory_runtime: InMemoryRuntime
) -> None:
    await _create(client, job_id="demo")
    started = await client.post(
        f"{V2}/jobs/demo/runs", json={"run_id": "demo-run-1", "inputs": {"topic": "x"}}
    )
    assert started.status_code == 201, started.text
    assert started.headers["location"] == f"{V2}/runs/demo-run-1"
    assert started.json() == {
        "job_id": "demo",
        "run_id": "demo-run-1",
        "status": "pending",
        "version": 2,
    }
    second = await client.post(f"{V2}/jobs/demo/runs")
    assert second.status_code == 201 and second.json()["run_id"].startswith("dh-")
    memory_runtime.run_until_idle()
    runs = (await client.get(f"{V2}/jobs/demo/runs")).json()
    assert [r["run_id"] for r in runs["data"]] == ["demo-run-1", second.json()["run_id"]]
    run = (await client.get(f"{V2}/runs/demo-run-1")).json()
    assert run["job_id"] == "demo" and run["status"] == "running"
    # The run is a job of the core: the job routes reach it by its run id.
    job = (await client.get(f"{API}/jobs/demo-run-1")).json()
    assert job["job"]["status"] == "running"
    paused = await client.post(f"{V2}/runs/demo-run-1/pause")
    assert paused.json() == {"run_id": "demo-run-1", "status": "paused", "version": 2}
    refused = _problem(await client.post(f"{V2}/runs/demo-run-1/pause"), 409, "invalid_transition")
    assert "paused" in refused["detail"]
    assert (await client.post(f"{V2}/runs/demo-run-1/resume")).json()["status"] == "resumed"
    _problem(
        await client.request("DELETE", f"{V2}/runs/demo-run-1", json={"confirmed": True}),
        409,
        "invalid_transition",
    )
    cancelled = await client.post(f"{V2}/runs/demo-run-1/cancel")
    assert cancelled.json()["status"] in {"cancelled", "cancellation_pending"}
    memory_runtime.run_until_idle()
    _problem(await client.delete(f"{V2}/runs/demo-run-1"), 422, "validation_error")
    removed = await client.request("DELETE", f"{V2}/runs/demo-run-1", json={"confirmed": True})
    assert removed.json() == {"run_id": "demo-run-1", "status": "deleted", "version": 2}
    _problem(await client.get(f"{V2}/runs/demo-run-1"), 404, "run_not_found")
    for action in ("pause", "resume", "cancel"):
        _problem(await client.post(f"{V2}/runs/ghost-run/{action}"), 404, "run_not_found")
    _problem(await client.post(f"{V2}/jobs/ghost/runs", json={}), 404, "job_definition_not_found")


async def test_definitions_the_gateway_or_the_core_refuses(client: httpx.AsyncClient) -> None:
    bad = await client.post(f"{V2}/jobs", json={"manifest": {"graph_id": "x"}})
    assert _problem(bad, 422, "manifest_invalid")["error_count"] == 3
    both = {"manifest": daemon_manifest(), "manifest_json": "{}"}
    _problem(await client.post(f"{V2}/jobs", json=both), 422, "validation_error")
    _problem(await client.post(f"{V2}/jobs", json={"job_id": "x"}), 422, "validation_error")
    unsafe = {"manifest": daemon_manifest(), "payloads": {"../up.txt": "x"}}
    _problem(await client.post(f"{V2}/jobs", json=unsafe), 422, "unsafe_payload_path")
    garbled = {"manifest": daemon_manifest(), "payloads_base64": {"a": "***"}}
    _problem(await client.post(f"{V2}/jobs", json=garbled), 422, "validation_error")
    spaced = {"manifest": daemon_manifest(), "job_id": "no spaces"}
    _problem(await client.post(f"{V2}/jobs", json=spaced), 422, "validation_error")
    await _create(client, job_id="taken")
    duplicate = await client.post(
        f"{V2}/jobs", json={"manifest": daemon_manifest(), "job_id": "taken"}
    )
    _problem(duplicate, 409, "conflict")
    storage = {"resources": [{"name": "/abs"}]}
    declared = await client.post(
        f"{V2}/jobs", json={"manifest": daemon_manifest(), "storage": storage}
    )
    _problem(declared, 400, "invalid_argument")
    other = await client.patch(f"{V2}/jobs/taken", json={"manifest": pipeline_manifest()})
    _problem(other, 409, "invalid_transition")
    await client.post(f"{V2}/jobs/taken/runs", json={"run_id": "r-1"})
    _problem(await client.post(f"{V2}/jobs/taken/runs", json={"run_id": "r-1"}), 409, "conflict")
    _problem(await client.post(f"{V2}/jobs/taken/archive"), 409, "invalid_transition")
    await client.post(f"{V2}/runs/r-1/cancel")


async def test_a_definitions_schedule(
    client: httpx.AsyncClient, memory_runtime: InMemoryRuntime
) -> None:
    schedules = StandInSchedules.install(memory_runtime)
    await _create(client, job_id="nightly")
    created = await client.post(
        f"{V2}/jobs/nightly/schedules", json={"schedule": {"crons": ["0 2 * * *"]}}
    )
    assert created.status_code == 201, created.text
    document = created.json()
    assert document["schedule_id"] == "sched_1" and document["version"] == 2
    assert "manifest" not in document and document["dispatch_count"] == 1
    # The source mn-api records when the request names none.
    assert schedules.records["sched_1"]["source"] == {"sdk": "create_job_schedule"}
    refused = await client.post(f"{V2}/jobs/nightly/schedules", json={"schedule": {}})
    assert "cron" in _problem(refused, 400, "invalid_argument")["detail"]
    assert (await client.get(f"{V2}/jobs/nightly")).json()["schedule_ids"] == ["sched_1"]


@pytest.mark.parametrize("release", ["1.1", "1.2.5", "d26bef71"])
async def test_cores_without_job_definitions_answer_501(
    settings_factory: Callable[..., Settings], release: str
) -> None:
    runtime = InMemoryRuntime(release=release, auto_run=False)
    async with asgi_client(settings_factory(), runtime) as client:
        for method, path, body in [
            ("GET", "/jobs", None),
            ("GET", "/jobs/x", None),
            ("POST", "/jobs/x/archive", None),
            ("POST", "/jobs/x/runs", {}),
            ("GET", "/runs/x", None),
            ("POST", "/runs/x/cancel", None),
            ("DELETE", "/runs/x", {"confirmed": True}),
        ]:
            answer = await client.request(method, f"{V2}{path}", json=body)
            _problem(answer, 501, "not_supported")


async def test_read_tokens_read_definitions_and_only_admins_change_them(
    settings_factory: Callable[..., Settings], memory_runtime: InMemoryRuntime
) -> None:
    settings = settings_factory(api_token="admin", read_tokens_raw="reader")
    async with asgi_client(settings, memory_runtime) as client:
        reader = {"Authorization": "Bearer reader"}
        admin = {"Authorization": "Bearer admin"}
        assert (await client.get(f"{V2}/jobs", headers=reader)).status_code == 200
        denied = await client.post(
            f"{V2}/jobs", headers=reader, json={"manifest": daemon_manifest()}
        )
        _problem(denied, 403, "forbidden")
        _problem(await client.get(f"{V2}/jobs"), 401, "unauthorized")
        made = await client.post(f"{V2}/jobs", headers=admin, json={"manifest": daemon_manifest()})
        assert made.status_code == 201


async def test_a_browser_may_change_a_definition_from_an_allowed_origin(
    settings_factory: Callable[..., Settings], memory_runtime: InMemoryRuntime
) -> None:
    settings = settings_factory(cors_allow_origins_raw="https://ui.example")
    async with asgi_client(settings, memory_runtime) as client:
        preflight = await client.options(
            f"{V2}/jobs/demo",
            headers={"Origin": "https://ui.example", "Access-Control-Request-Method": "PATCH"},
        )
    assert preflight.status_code == 200
    assert "PATCH" in preflight.headers["access-control-allow-methods"]
