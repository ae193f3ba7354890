"""The service registry routes (GET /services, GET /services/{name}/resolve, POST
/services:check), in-process, over the simulated core directly and through mn-fake-core."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.config import Settings
from tests.support import asgi_client, check_problem, make_zip

API = "/api/v1"


def _manifest(**extra: Any) -> dict[str, Any]:
    return {
        "manifest_version": "1",
        "graph_id": "svc",
        "daemon": True,
        "services": [{"name": "api", "tags": ["v1"]}],
        "nodes": [
            {
                "node_id": "worker",
                "agent_type": "executor",
                "services": [
                    {"name": "search-index", "tags": ["v1", "gpu"]},
                    {"name": "flaky", "checks": [{"type": "script", "command": "true"}]},
                ],
            }
        ],
        "entrypoints": ["worker"],
        **extra,
    }


async def _running(client: httpx.AsyncClient, runtime: InMemoryRuntime) -> str:
    answer = await client.post(f"{API}/jobs", json={"manifest": _manifest()})
    assert answer.status_code == 201, answer.text
    runtime.run_until_idle()
    return answer.json()["job_id"]


async def test_listing_and_resolving(
    client: httpx.AsyncClient, memory_runtime: InMemoryRuntime
) -> None:
    job_id = await _running(client, memory_runtime)
    listed = await client.get(f"{API}/services")
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["version"] == 1
    # Passing only unless asked: the service whose check fails is left out.
    assert [s["id"] for s in body["services"]] == [
        f"{job_id}:job:api",
        f"{job_id}:worker:search-index",
    ]
    everything = (await client.get(f"{API}/services", params={"passing_only": "false"})).json()
    flaky = [s for s in everything["services"] if s["name"] == "flaky"]
    assert flaky[0]["status"] == "critical" and flaky[0]["agent_id"] == "worker"
    tagged = await client.get(f"{API}/services", params={"tag": ["gpu", "v1"], "job_id": job_id})
    assert [s["name"] for s in tagged.json()["services"]] == ["search-index"]
    assert (await client.get(f"{API}/services", params={"agent_id": "nobody"})).json() == {
        "services": [],
        "version": 1,
    }
    resolved = await client.get(f"{API}/services/search-index/resolve", params={"tag": "v1"})
    assert resolved.status_code == 200
    [instance] = resolved.json()["services"]
    assert instance["job_id"] == job_id and instance["node"] == memory_runtime.live_nodes[0]
    missing = await client.get(f"{API}/services/flaky/resolve")
    assert missing.status_code == 200 and missing.json()["services"] == []
    shown = await client.get(f"{API}/services/flaky/resolve", params={"passing_only": "false"})
    assert [s["name"] for s in shown.json()["services"]] == ["flaky"]
    await client.post(f"{API}/jobs/{job_id}/cancel")
    memory_runtime.run_until_idle()
    assert (await client.get(f"{API}/services")).json()["services"] == []


async def test_bad_queries_are_refused(client: httpx.AsyncClient) -> None:
    for path, params in (
        ("/services/bad name!/resolve", {}),
        ("/services", {"name": ""}),
        ("/services", {"passing_only": "maybe"}),
        ("/services", {"tag": [f"t{i}" for i in range(33)]}),
    ):
        answer = await client.get(f"{API}{path}", params=params)
        assert answer.status_code == 422, (path, answer.text)
        assert check_problem(answer.json())["error"] == "validation_error"


async def test_checking_required_services(
    client: httpx.AsyncClient, memory_runtime: InMemoryRuntime
) -> None:
    job_id = await _running(client, memory_runtime)
    required = ["search-index", {"name": "vector-db", "required": False}, {"name": "gone"}]
    for path in ("/services:check", "/services/check"):
        answer = await client.post(f"{API}{path}", json={"required_services": required})
        assert answer.status_code == 200, answer.text
        report = answer.json()
        assert report["version"] == 1 and report["schema_version"] == "validation.report/v1"
        assert report["ok"] is False and report["status"] == "failed"
        assert report["errors"] == ["gone has no passing registered instances"]
        assert [r["status"] for r in report["results"]] == [
            "passing",
            "optional_missing",
            "missing",
        ]
        assert report["results"][0]["instances"][0]["job_id"] == job_id
    passed = await client.post(f"{API}/services:check", json={"required_services": ["api"]})
    assert passed.json()["ok"] is True and passed.json()["error_count"] == 0
    nothing = await client.post(f"{API}/services:check", json={"required_services": []})
    assert nothing.json()["ok"] is True and nothing.json()["results"] == []


async def test_checking_an_uploaded_bundle(
    client: httpx.AsyncClient, memory_runtime: InMemoryRuntime
) -> None:
    await _running(client, memory_runtime)
    manifest = _manifest(required_services=["api", {"name": "search-index", "tags": ["cpu"]}])
    archive = make_zip({"manifest.json": orjson.dumps(manifest)})
    upload = await client.post(
        f"{API}/bundles/upload", files={"bundle": ("b.zip", archive, "application/zip")}
    )
    assert upload.status_code == 201, upload.text
    bundle = upload.json()["bundle_id"]
    for body in ({"bundle_id": bundle}, {"_bundle_path": bundle, "version": 1}):
        report = (await client.post(f"{API}/services:check", json=body)).json()
        assert [(r["name"], r["status"]) for r in report["results"]] == [
            ("api", "passing"),
            ("search-index", "missing"),
        ]
        assert report["issues"][0]["actual"] == {"name": "search-index", "tags": ["cpu"]}
    gone = await client.post(f"{API}/services:check", json={"bundle_id": "bnd_" + "0" * 32})
    assert gone.status_code == 404
    assert check_problem(gone.json())["error"] == "bundle_not_found"


async def test_a_check_names_exactly_one_source(client: httpx.AsyncClient) -> None:
    for body in (
        {},
        {"bundle_id": "bnd_x", "required_services": []},
        {"bundle_id": ""},
        {"path": "/srv/bundles/demo"},
        {"required_services": [1]},
    ):
        answer = await client.post(f"{API}/services:check", json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert check_problem(answer.json())["error"] == "validation_error"


async def test_reading_needs_a_read_token_and_checking_an_admin_one(
    settings_factory: Callable[..., Settings],
) -> None:
    runtime = InMemoryRuntime(auto_run=False)
    settings = settings_factory(api_token="admin", read_tokens_raw="reader")
    reader = {"Authorization": "Bearer reader"}
    async with asgi_client(settings, runtime) as client:
        assert (await client.get(f"{API}/services", headers=reader)).status_code == 200
        resolved = await client.get(f"{API}/services/api/resolve", headers=reader)
        assert resolved.status_code == 200
        body = {"required_services": ["api"]}
        refused = await client.post(f"{API}/services:check", json=body, headers=reader)
        assert refused.status_code == 403
        assert check_problem(refused.json())["error"] == "forbidden"
        admin = {"Authorization": "Bearer admin"}
        allowed = await client.post(f"{API}/services:check", json=body, headers=admin)
        assert allowed.status_code == 200
        assert (await client.get(f"{API}/services")).status_code == 401


@pytest.mark.parametrize("release", ["1.1", "d26bef71"])
async def test_cores_without_the_registry_answer_501(
    settings_factory: Callable[..., Settings], release: str
) -> None:
    runtime = InMemoryRuntime(release=release, auto_run=False)
    async with asgi_client(settings_factory(), runtime) as client:
        for answer in (
            await client.get(f"{API}/services"),
            await client.get(f"{API}/services/api/resolve"),
            await client.post(f"{API}/services:check", json={"required_services": ["api"]}),
        ):
            assert answer.status_code == 501, answer.text
            assert check_problem(answer.json())["error"] == "not_supported"


async def test_a_core_whose_store_is_away(
    client: httpx.AsyncClient, memory_runtime: InMemoryRuntime
) -> None:
    await _running(client, memory_runtime)
    memory_runtime.state_store_down()
    answer = await client.get(f"{API}/services")
    assert answer.status_code == 502, answer.text
    assert "Redix.ConnectionError" in check_problem(answer.json())["detail"]
    report = await client.post(f"{API}/services:check", json={"required_services": ["api"]})
    assert report.json()["results"][0]["status"] == "failed"
