"""Idempotency-Key on POST /jobs and bundle uploads, and per-caller rate limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.application.ports import JobAck
from tests.support import asgi_client, make_zip, pipeline_manifest

API = "/api/v1"


async def _jobs(client: httpx.AsyncClient, **headers: str) -> list[str]:
    return [j["job_id"] for j in (await client.get(f"{API}/jobs", headers=headers)).json()["data"]]


async def test_the_same_key_and_body_replays_the_first_answer(client: httpx.AsyncClient) -> None:
    body = {"manifest": pipeline_manifest()}
    first = await client.post(f"{API}/jobs", json=body, headers={"Idempotency-Key": "k-1"})
    again = await client.post(f"{API}/jobs", json=body, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await _jobs(client) == [first.json()["job_id"]]


async def test_the_same_key_with_another_body_is_422(client: httpx.AsyncClient) -> None:
    await client.post(
        f"{API}/jobs", json={"manifest": pipeline_manifest()}, headers={"Idempotency-Key": "k-2"}
    )
    other = {**pipeline_manifest(), "job_name": "other"}
    response = await client.post(
        f"{API}/jobs", json={"manifest": other}, headers={"Idempotency-Key": "k-2"}
    )
    assert response.status_code == 422
    assert response.json()["error"] == "idempotency_key_reused"
    assert len(await _jobs(client)) == 1


async def test_runtime_verdicts_are_replayed_but_gateway_refusals_are_not(
    client: httpx.AsyncClient,
) -> None:
    bad = pipeline_manifest()
    del bad["entrypoints"]
    first = await client.post(
        f"{API}/jobs", json={"manifest": bad}, headers={"Idempotency-Key": "k-3"}
    )
    again = await client.post(
        f"{API}/jobs", json={"manifest": bad}, headers={"Idempotency-Key": "k-3"}
    )
    assert first.status_code == again.status_code == 422
    assert again.json()["error"] == "manifest_invalid"
    assert again.headers["idempotent-replayed"] == "true"

    refused = await client.post(
        f"{API}/jobs",
        headers={"Idempotency-Key": "k-4"},
        json={"manifest": pipeline_manifest(), "payloads": {"../x": ""}},
    )
    assert refused.json()["error"] == "unsafe_payload_path"
    fixed = await client.post(
        f"{API}/jobs", headers={"Idempotency-Key": "k-4"}, json={"manifest": pipeline_manifest()}
    )
    assert fixed.status_code == 201 and "idempotent-replayed" not in fixed.headers


@pytest.mark.parametrize("key", ["x" * 256, "", "naïve", "tab\there"])
async def test_unusable_keys_are_400(client: httpx.AsyncClient, key: str) -> None:
    response = await client.post(
        f"{API}/jobs",
        json={"manifest": pipeline_manifest()},
        headers={"Idempotency-Key": key.encode("utf-8")},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_idempotency_key"
    assert await _jobs(client) == []


async def test_a_255_character_key_is_fine(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{API}/jobs",
        json={"manifest": pipeline_manifest()},
        headers={"Idempotency-Key": "k" * 255},
    )
    assert response.status_code == 201


async def test_uploads_with_submit_are_idempotent(client: httpx.AsyncClient) -> None:
    archive = make_zip(
        {
            "manifest.json": b'{"manifest_version": "1", "graph_id": "b", '
            b'"nodes": [{"node_id": "a", "agent_type": "sensor"}], '
            b'"entrypoints": ["a"]}'
        }
    )
    files = {"bundle": ("b.zip", archive, "application/zip")}
    first = await client.post(
        f"{API}/bundles/upload",
        params={"submit": "true"},
        files=files,
        headers={"Idempotency-Key": "up-1"},
    )
    again = await client.post(
        f"{API}/bundles/upload",
        params={"submit": "true"},
        files=files,
        headers={"Idempotency-Key": "up-1"},
    )
    assert first.status_code == again.status_code == 201
    assert again.json()["job_id"] == first.json()["job_id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert len(await _jobs(client)) == 1
    # Keys are scoped to the route: the same key on POST /jobs is a different request.
    other = await client.post(
        f"{API}/jobs", json={"manifest": pipeline_manifest()}, headers={"Idempotency-Key": "up-1"}
    )
    assert other.status_code == 201 and "idempotent-replayed" not in other.headers


class SlowRuntime(InMemoryRuntime):
    """Holds each submission until the test lets it through."""

    def __init__(self) -> None:
        super().__init__(auto_run=False)
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def submit_job(self, manifest_json: str, payloads) -> JobAck:
        self.entered.set()
        await self.gate.wait()
        return await super().submit_job(manifest_json, payloads)


@pytest.fixture
async def two_callers(settings_factory: Callable) -> AsyncIterator[tuple]:
    runtime = SlowRuntime()
    async with asgi_client(settings_factory(api_token="alice,bob"), runtime) as client:
        yield client, runtime


async def test_a_request_still_in_flight_makes_the_second_409(two_callers: tuple) -> None:
    client, runtime = two_callers
    headers = {"Authorization": "Bearer alice", "Idempotency-Key": "slow"}
    body = {"manifest": pipeline_manifest()}
    first = asyncio.create_task(client.post(f"{API}/jobs", json=body, headers=headers))
    await asyncio.wait_for(runtime.entered.wait(), 10)  # the first one holds the key now
    second = await client.post(f"{API}/jobs", json=body, headers=headers)
    assert second.status_code == 409
    assert second.json()["error"] == "idempotency_key_in_flight"
    runtime.gate.set()
    assert (await first).status_code == 201


async def test_keys_are_scoped_to_the_caller(two_callers: tuple) -> None:
    client, runtime = two_callers
    runtime.gate.set()
    body = {"manifest": pipeline_manifest()}
    answers = [
        await client.post(
            f"{API}/jobs",
            json=body,
            headers={"Authorization": f"Bearer {who}", "Idempotency-Key": "same"},
        )
        for who in ("alice", "bob")
    ]
    assert [a.status_code for a in answers] == [201, 201]
    assert answers[0].json()["job_id"] != answers[1].json()["job_id"]


@pytest.fixture
async def limited(settings_factory: Callable, memory_runtime) -> AsyncIterator[httpx.AsyncClient]:
    settings = settings_factory(api_token="alice,bob", rate_limit="3/minute")
    async with asgi_client(settings, memory_runtime) as client:
        yield client


async def test_callers_over_the_rate_limit_get_429(limited: httpx.AsyncClient) -> None:
    alice = {"Authorization": "Bearer alice"}
    assert [(await limited.get(f"{API}/jobs", headers=alice)).status_code for _ in range(3)] == [
        200,
        200,
        200,
    ]
    over = await limited.get(f"{API}/jobs", headers=alice)
    assert over.status_code == 429 and over.json()["error"] == "rate_limited"
    assert 1 <= int(over.headers["retry-after"]) <= 60
    bob = await limited.get(f"{API}/jobs", headers={"Authorization": "Bearer bob"})
    assert bob.status_code == 200
    assert (await limited.get(f"{API}/health")).status_code == 200  # public routes are free


async def test_guessing_tokens_is_limited_too(limited: httpx.AsyncClient) -> None:
    codes = [
        (await limited.get(f"{API}/jobs", headers={"Authorization": f"Bearer g{i}"})).status_code
        for i in range(4)
    ]
    assert codes == [401, 401, 401, 429]
