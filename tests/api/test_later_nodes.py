"""The node administration routes: reconcile and drain (operations on 1.2.31, the core's
own calls on 1.2.5), undrain, maintenance and the drain status; 501 on older cores."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.config import Settings
from tests.support import FakeClock, asgi_client, check_problem, pipeline_manifest
from tests.support.simulated_core import over_fake_core

API = "/api/v1"
MN1, MN2 = "mn1@127.0.0.1", "mn2@127.0.0.1"
RECOVERABLE = {
    **pipeline_manifest(),
    "daemon": True,
    "policies": {"job_type": "service", "recovery_mode": "cluster_recover"},
}


@pytest.fixture(params=["memory", "grpc"])
async def cluster(
    request: pytest.FixtureRequest, settings_factory: Callable[..., Settings]
) -> AsyncIterator[tuple[httpx.AsyncClient, InMemoryRuntime]]:
    """A gateway in front of a two-node 1.2.31 cluster: in memory, or over gRPC."""
    runtime = InMemoryRuntime(auto_run=False, clock=FakeClock(), nodes=2)
    if request.param == "memory":
        async with asgi_client(settings_factory(), runtime) as client:
            yield client, runtime
        return
    async with over_fake_core(runtime) as remote, asgi_client(settings_factory(), remote) as client:
        yield client, runtime


async def _ended(client: httpx.AsyncClient, operation_id: str) -> dict[str, Any]:
    """The operation once it has ended or waits (its items run in the background)."""
    for _ in range(500):
        document = (await client.get(f"{API}/operations/{operation_id}")).json()
        if document["status"] not in ("pending", "running"):
            return document
        await asyncio.sleep(0.01)
    raise AssertionError(f"operation {operation_id} did not end: {document}")


async def _node(client: httpx.AsyncClient, name: str) -> dict[str, Any]:
    nodes = (await client.get(f"{API}/system/summary")).json()["nodes"]
    return next(node for node in nodes if node["name"] == name)


async def test_maintenance_undrain_and_drain_status(
    cluster: tuple[httpx.AsyncClient, InMemoryRuntime],
) -> None:
    client, _ = cluster
    before = (await client.get(f"{API}/nodes/{MN2}/drain")).json()
    assert before["status"] == "healthy" and before["version"] == 1
    # An empty request turns maintenance on.
    on = await client.post(f"{API}/nodes/{MN2}/maintenance")
    assert on.status_code == 200, on.text
    assert on.json()["status"] == "maintenance" and on.json()["scheduling_eligible"] is False
    node = await _node(client, MN2)
    assert (node["status"], node["scheduling_eligible"]) == ("maintenance", False)
    assert node["coordination_store"]["healthy"] is True
    status = (await client.get(f"{API}/nodes/{MN2}/drain")).json()
    assert status["maintenance"]["enabled"] is True
    undrained = await client.post(
        f"{API}/nodes/{MN2}/undrain", json={"reason": "done", "mark_eligible": True}
    )
    assert undrained.json()["status"] == "cancelled"
    assert undrained.json()["node_state"]["status"] == "healthy"
    off = await client.post(f"{API}/nodes/{MN2}/maintenance", json={"enabled": False})
    assert off.json()["status"] == "healthy"
    unknown = await client.get(f"{API}/nodes/ghost@10.9.9.9/drain")
    assert unknown.status_code == 200 and unknown.json()["status"] == "unknown"


async def test_a_drain_moves_the_nodes_jobs_away(
    cluster: tuple[httpx.AsyncClient, InMemoryRuntime],
) -> None:
    client, runtime = cluster
    manifest = {"manifest": RECOVERABLE}
    jobs = [(await client.post(f"{API}/jobs", json=manifest)).json()["job_id"] for _ in range(2)]
    answer = await client.post(
        f"{API}/nodes/{MN2}/drain", json={"reason": "rack move", "deadline": "30s"}
    )
    assert answer.status_code == 200, answer.text
    created = answer.json()
    assert created["kind"] == "drain_node" and created["node_name"] == MN2
    assert created["deadline_ms"] == 30_000 and created["ignore_system_jobs"] is True
    assert created["reason"] == "rack move" and created["target_count"] == 2
    document = await _ended(client, created["operation_id"])
    assert document["status"] == "completed"
    assert {item["status"] for item in document["items"].values()} == {"migrated"}
    for job_id in jobs:
        placed = {agent.node for agent in runtime._jobs[job_id].agents.values()}
        assert placed == {MN1}
    status = (await client.get(f"{API}/nodes/{MN2}/drain")).json()
    assert status["status"] == "maintenance" and status["drain"]["status"] == "complete"
    assert (await _node(client, MN2))["status"] == "maintenance"


async def test_a_reconcile_is_an_operation(
    cluster: tuple[httpx.AsyncClient, InMemoryRuntime],
) -> None:
    client, _ = cluster
    plain = {**pipeline_manifest(), "daemon": True}
    job_id = (await client.post(f"{API}/jobs", json={"manifest": plain})).json()["job_id"]
    answer = await client.post(f"{API}/nodes/{MN1}/reconcile", json={"dry_run": True})
    assert answer.status_code == 200, answer.text
    created = answer.json()
    assert created["kind"] == "reconcile_node" and created["dry_run"] is True
    document = await _ended(client, created["operation_id"])
    assert [item["status"] for item in document["items"].values()] == ["paused_for_review"]
    # A dry run changes nothing.
    assert (await client.get(f"{API}/jobs/{job_id}")).json()["job"]["status"] == "pending"


async def test_bad_requests_are_refused(
    cluster: tuple[httpx.AsyncClient, InMemoryRuntime],
) -> None:
    client, _ = cluster
    for bad in (
        client.post(f"{API}/nodes/{MN2}/drain", json={"deadline": "zz"}),
        client.post(f"{API}/nodes/{MN2}/drain", json={"deadline": "0s"}),
        client.post(f"{API}/nodes/{MN2}/maintenance", json={"enabled": True, "extra": 1}),
        client.post(f"{API}/nodes/no-host/undrain"),
        client.get(f"{API}/nodes/-mn2@127.0.0.1/drain"),
    ):
        answer = await bad
        assert answer.status_code == 422, answer.text
        assert check_problem(answer.json())["error"] == "validation_error"


async def test_1_2_5_drains_through_its_own_call(settings_factory: Callable[..., Settings]) -> None:
    runtime = InMemoryRuntime(release="1.2.5", auto_run=False, clock=FakeClock(), nodes=2)
    async with asgi_client(settings_factory(), runtime) as client:
        await client.post(f"{API}/jobs", json={"manifest": RECOVERABLE})
        answer = await client.post(f"{API}/nodes/{MN2}/drain")
        assert answer.status_code == 200, answer.text
        result = answer.json()
        assert result["node"] == MN2 and result["status"] == "complete"
        assert "operation_id" not in result
        assert [a["status"] for a in result["actions"]] == ["migrated"]
        reconciled = (await client.post(f"{API}/nodes/{MN2}/reconcile")).json()
        assert reconciled["checked"] == 0 and reconciled["jobs"] == []


@pytest.mark.parametrize("release", ["1.1", "d26bef71"])
async def test_cores_without_node_administration_answer_501(
    settings_factory: Callable[..., Settings], release: str
) -> None:
    runtime = InMemoryRuntime(release=release, auto_run=False, clock=FakeClock())
    async with asgi_client(settings_factory(), runtime) as client:
        for answer in (
            await client.post(f"{API}/nodes/{MN2}/drain"),
            await client.post(f"{API}/nodes/{MN2}/reconcile"),
            await client.post(f"{API}/nodes/{MN2}/undrain"),
            await client.post(f"{API}/nodes/{MN2}/maintenance"),
            await client.get(f"{API}/nodes/{MN2}/drain"),
        ):
            assert answer.status_code == 501, answer.text
            assert check_problem(answer.json())["error"] == "not_supported"
