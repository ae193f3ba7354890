"""/api/v1/deployments: the core's deployments, over the memory runtime and over gRPC to
mn-fake-core (both 1.2.31, running their jobs: a deploy waits until its job runs), and
refused as not supported by cores without them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.config import Settings
from tests.support import asgi_client, check_problem, pipeline_manifest
from tests.support.simulated_core import running_runtime
from tests.support.simulated_core import service_manifest as service

API = "/api/v1"


@pytest.fixture
async def memory_runtime() -> AsyncIterator[InMemoryRuntime]:
    async with running_runtime() as runtime:
        yield runtime


async def deploy(client: httpx.AsyncClient, **body: Any) -> Any:
    answer = await client.post(f"{API}/deployments", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_deploying_promoting_and_reading(client: httpx.AsyncClient) -> None:
    first = await deploy(client, manifest=service(), key="reviews")
    assert first["status"] == "successful" and first["version"]["version"] == "1"
    deployment = first["deployment"]
    assert deployment["deployment_key"] == "reviews"
    assert deployment["policy"]["strategy"] == "rolling" and deployment["policy"]["version"] == 1
    job = (await client.get(f"{API}/jobs/{first['job_id']}")).json()
    assert job["job"]["status"] == "running"
    canary = await deploy(
        client,
        manifest=service(worker={"model": "larger"}),
        key="reviews",
        policy={"strategy": "canary", "canary": 1},
    )
    assert canary["status"] == "awaiting_promotion"
    assert canary["deployment"]["canary_agent_ids"] == ["worker"]
    promoted = await client.post(f"{API}/deployments/reviews/promote")
    assert promoted.status_code == 200 and promoted.json()["status"] == "successful"
    assert promoted.json()["version"]["stable"] is True
    again = await client.post(f"{API}/deployments/reviews/promote")
    assert again.status_code == 409
    problem = check_problem(again.json())
    assert problem["error"] == "invalid_transition"
    assert problem["detail"] == "deployment is successful, expected awaiting_promotion"
    details = (await client.get(f"{API}/deployments/reviews")).json()
    assert details["version"] == 1 and [v["version"] for v in details["versions"]] == ["1", "2"]
    assert details["stable_version"] == "2"
    by_id = await client.get(f"{API}/deployments/{deployment['deployment_id']}")
    assert by_id.json()["deployment_id"] == deployment["deployment_id"]
    listed = (await client.get(f"{API}/deployments")).json()
    assert listed["version"] == 1 and len(listed["data"]) == 2
    mine = (await client.get(f"{API}/deployments", params={"status": "successful"})).json()
    assert {d["deployment_key"] for d in mine["data"]} == {"reviews"}
    none = (await client.get(f"{API}/deployments", params={"key": "other"})).json()
    assert none["data"] == []


async def test_rollbacks_and_status_marks(client: httpx.AsyncClient) -> None:
    first = await deploy(client, manifest=pipeline_manifest())
    key = first["deployment"]["deployment_key"]
    assert key == "three steps"  # the manifest's job_name
    path = f"{API}/deployments/{quote(key)}"
    nothing = await client.post(f"{path}/rollback")
    assert nothing.status_code == 400
    assert check_problem(nothing.json())["detail"] == (
        "no rollback target found for deployment three steps"
    )
    rerun = await client.post(f"{path}/rollback", json={"version": "1", "reason": "bad"})
    assert rerun.status_code == 200
    assert rerun.json()["version"]["version"] == "2" and "status" not in rerun.json()
    assert (await client.post(f"{path}/rollback", json={"version": 1})).status_code == 422
    paused = await client.post(f"{path}/pause", json={"reason": "freeze"})
    assert paused.json()["status"] == "paused" and paused.json()["description"] == "freeze"
    resumed = await client.post(f"{path}/resume")
    assert resumed.json()["status"] == "running" and resumed.json()["description"] == ""
    failed = await client.post(f"{path}/fail", json={})
    assert failed.json()["status"] == "failed" and failed.json()["version"] == 1
    for verb in ("pause", "resume", "fail", "promote", "rollback"):
        unknown = await client.post(f"{API}/deployments/ghost/{verb}")
        assert unknown.status_code == 404, verb
        assert check_problem(unknown.json())["error"] == "deployment_not_found"
    missing = await client.get(f"{API}/deployments/ghost")
    assert missing.status_code == 404


async def test_refused_deploys(client: httpx.AsyncClient) -> None:
    broken = await client.post(f"{API}/deployments", json={"manifest": {"graph_id": "g"}})
    assert broken.status_code == 400
    assert check_problem(broken.json())["error"] == "invalid_argument"
    manifest = service()
    manifest["edges"].append({"from_node": "router", "to_node": "y not found", "message_type": "t"})
    missing = await client.post(f"{API}/deployments", json={"manifest": manifest})
    assert missing.status_code == 400
    assert check_problem(missing.json())["error"] == "invalid_argument"
    for body in (
        {"manifest": service(), "policy": {"strategy": "surge"}},
        {"manifest": service(), "policy": {"max_parallel": 0}},
        {"key": "no-manifest"},
    ):
        answer = await client.post(f"{API}/deployments", json=body)
        assert answer.status_code == 422, body
        assert check_problem(answer.json())["error"] == "validation_error"


@pytest.mark.parametrize("release", ["1.1", "d26bef71"])
async def test_cores_without_deployments_answer_501(settings: Settings, release: str) -> None:
    runtime = InMemoryRuntime(auto_run=False, release=release)
    async with asgi_client(settings, runtime) as client:
        for method, path, body in [
            ("GET", "/deployments", None),
            ("POST", "/deployments", {"manifest": service()}),
            ("GET", "/deployments/x", None),
            ("POST", "/deployments/x/rollback", {}),
        ]:
            answer = await client.request(method, f"{API}{path}", json=body)
            assert answer.status_code == 501, (method, path)
            assert check_problem(answer.json())["error"] == "not_supported"
