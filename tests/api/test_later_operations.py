"""The operation routes (OperationsService, 1.2.31): start, read, and follow an
operation's events over SSE, resumed by sequence; 501 on cores without operations."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
import pytest

from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.config import Settings
from tests.support import FakeClock, asgi_client, check_problem, pipeline_manifest
from tests.support.fixtures import read_sse
from tests.support.simulated_core import over_fake_core

API = "/api/v1"


async def _jobs(client: httpx.AsyncClient, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        answer = await client.post(f"{API}/jobs", json={"manifest": pipeline_manifest()})
        assert answer.status_code == 201, answer.text
        ids.append(answer.json()["job_id"])
    return ids


async def _ended(client: httpx.AsyncClient, operation_id: str) -> dict[str, Any]:
    """The operation once it has ended (its items run in the background meanwhile)."""
    for _ in range(500):
        document = (await client.get(f"{API}/operations/{operation_id}")).json()
        if document["status"] not in ("pending", "running"):
            return document
        await asyncio.sleep(0.01)
    raise AssertionError(f"operation {operation_id} did not end: {document}")


async def _events(client: httpx.AsyncClient, url: str, **headers: str) -> list[dict[str, Any]]:
    async with client.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        return [e for e in await read_sse(response.aiter_lines()) if "data" in e]


async def test_an_operation_is_started_read_and_followed_by_sequence(
    client: httpx.AsyncClient,
) -> None:
    live = await _jobs(client, 2)
    answer = await client.post(f"{API}/operations/cancel_all_jobs")
    assert answer.status_code == 200, answer.text
    created = answer.json()
    assert created["kind"] == "cancel_all_jobs" and created["status"] == "pending"
    assert created["version"] == 1 and created["target_count"] == 2
    operation_id = created["operation_id"]
    document = await _ended(client, operation_id)
    assert document["status"] == "completed" and sorted(document["items"]) == sorted(live)
    assert document["counters"]["succeeded"] == 2
    for job_id in live:
        assert (await client.get(f"{API}/jobs/{job_id}")).json()["job"]["status"] == "cancelled"

    url = f"{API}/operations/{operation_id}/events"
    events = await _events(client, url)
    assert [e["id"] for e in events] == [str(n) for n in range(1, 8)]
    assert events[0]["event"] == "operation_created"
    assert events[-1]["event"] == "operation_completed"
    assert orjson.loads(events[-1]["data"])["status"] == "completed"
    # Resumed after a sequence: by Last-Event-ID (as EventSource does), or after_sequence.
    resumed = await _events(client, url, **{"Last-Event-ID": "5"})
    assert [e["id"] for e in resumed] == ["6", "7"]
    later = await _events(client, f"{url}?after_sequence=6&follow=true")
    assert [e["id"] for e in later] == ["7"]
    # Nothing follows the last event of an operation that has ended.
    done = await client.get(url, headers={"Last-Event-ID": "7"})
    assert done.status_code == 204


async def test_refusals_are_problems(client: httpx.AsyncClient) -> None:
    nodeless = await client.post(f"{API}/operations/drain_node", json={"reason": "x"})
    assert nodeless.status_code == 400 and "node_name is required" in nodeless.json()["detail"]
    for url in (f"{API}/operations/op-missing", f"{API}/operations/op-missing/events"):
        missing = await client.get(url)
        assert missing.status_code == 404, url
        assert check_problem(missing.json())["error"] == "operation_not_found"
    for bad in (
        client.post(f"{API}/operations/defrag", json={}),
        client.post(f"{API}/operations/clear_jobs", json=["not", "an", "object"]),
        client.get(f"{API}/operations/op%20space"),
        client.get(f"{API}/operations/op-x/events", headers={"Last-Event-ID": "later"}),
    ):
        answer = await bad
        assert answer.status_code == 422, answer.text
        assert check_problem(answer.json())["error"] == "validation_error"


@pytest.mark.parametrize("release", ["1.1", "1.2.5", "d26bef71"])
async def test_cores_without_operations_answer_501(
    settings_factory: Callable[..., Settings], release: str
) -> None:
    runtime = InMemoryRuntime(release=release, auto_run=False, clock=FakeClock())
    async with asgi_client(settings_factory(), runtime) as client:
        for answer in (
            await client.post(f"{API}/operations/clear_jobs"),
            await client.get(f"{API}/operations/op-x"),
            await client.get(f"{API}/operations/op-x/events"),
        ):
            assert answer.status_code == 501
            assert check_problem(answer.json())["error"] == "not_supported"


async def test_a_read_token_reads_and_only_an_admin_token_starts(
    settings_factory: Callable[..., Settings],
) -> None:
    runtime = InMemoryRuntime(auto_run=False, clock=FakeClock())
    settings = settings_factory(api_token="admin-secret", read_tokens_raw="read-secret")
    async with asgi_client(settings, runtime) as client:
        read = {"Authorization": "Bearer read-secret"}
        refused = await client.post(f"{API}/operations/clear_jobs", headers=read)
        assert refused.status_code == 403
        started = await client.post(
            f"{API}/operations/clear_jobs", headers={"Authorization": "Bearer admin-secret"}
        )
        assert started.status_code == 200
        operation_id = started.json()["operation_id"]
        got = await client.get(f"{API}/operations/{operation_id}", headers=read)
        assert got.status_code == 200 and got.json()["operation_id"] == operation_id


@pytest.fixture
async def grpc_client(
    settings_factory: Callable[..., Settings],
) -> AsyncIterator[tuple[httpx.AsyncClient, InMemoryRuntime]]:
    """The gateway over gRPC to mn-fake-core (1.2.31) around an in-memory runtime."""
    runtime = InMemoryRuntime(auto_run=False, clock=FakeClock())
    async with over_fake_core(runtime) as remote, asgi_client(settings_factory(), remote) as client:
        yield client, runtime


async def test_over_grpc_the_stream_resumes_by_sequence(
    grpc_client: tuple[httpx.AsyncClient, InMemoryRuntime],
) -> None:
    client, _ = grpc_client
    await _jobs(client, 1)
    created = (await client.post(f"{API}/operations/cancel_all_jobs", json={})).json()
    await _ended(client, created["operation_id"])
    url = f"{API}/operations/{created['operation_id']}/events"
    assert [e["event"] for e in await _events(client, url)] == [
        "operation_created",
        "operation_started",
        "item_started",
        "item_completed",
        "operation_completed",
    ]
    resumed = await _events(client, url, **{"Last-Event-ID": "3"})
    assert [(e["id"], e["event"]) for e in resumed] == [
        ("4", "item_completed"),
        ("5", "operation_completed"),
    ]
    assert (await client.get(f"{API}/operations/op-missing/events")).status_code == 404
