"""Progress ids over HTTP: launches sent together under one id start one job, an id belongs
to the token that used it first (without tokens, to every caller alike), and a launch that
ends in an unexpected error says `failed`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from dependency_injector import providers

from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.config import Settings
from mn_api.container import build_container
from mn_api.entrypoints.http import create_app
from tests.support import asgi_client, check_problem, pipeline_manifest

API = "/api/v1"
PROMPTLY = 30


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    folder = tmp_path / "catalog" / "plain"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_bytes(orjson.dumps(pipeline_manifest()))
    return tmp_path / "catalog"


@pytest.fixture
def held(memory_runtime: InMemoryRuntime) -> tuple[asyncio.Event, asyncio.Event]:
    """Submissions set the first event when they arrive, and wait until the second is set."""
    arrived, release = asyncio.Event(), asyncio.Event()
    submit = memory_runtime.submit_job

    async def waiting(manifest_json: str, payloads: Mapping[str, bytes]) -> Any:
        arrived.set()
        await release.wait()
        return await submit(manifest_json, payloads)

    memory_runtime.submit_job = waiting  # type: ignore[method-assign]
    return arrived, release


def _launch(client: httpx.AsyncClient, token: str | None = None, **body: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"version": 1, "source": "catalog", "blueprint_id": "plain", **body}
    call = client.post(f"{API}/blueprints/launch/runs", json=body, headers=headers)
    return asyncio.wait_for(call, PROMPTLY)


async def _jobs(client: httpx.AsyncClient, token: str | None = None) -> list[str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = await client.get(f"{API}/jobs", headers=headers)
    return [job["job_id"] for job in answer.json()["data"]]


async def test_four_launches_under_one_id_start_one_job(
    settings_factory: Callable[..., Settings],
    memory_runtime: InMemoryRuntime,
    catalog: Path,
    held: tuple[asyncio.Event, asyncio.Event],
) -> None:
    arrived, release = held
    async with asgi_client(settings_factory(blueprint_dir=catalog), memory_runtime) as client:
        first = asyncio.ensure_future(_launch(client, progress_id="once"))
        await asyncio.wait_for(arrived.wait(), PROMPTLY)
        others = await asyncio.gather(*(_launch(client, progress_id="once") for _ in range(3)))
        for other in others:
            assert other.status_code == 409
            assert check_problem(other.json())["error"] == "launch_in_progress"
        release.set()
        answer = await first
        assert answer.status_code == 201
        again = await asyncio.gather(*(_launch(client, progress_id="once") for _ in range(3)))
        assert {a.json()["job_id"] for a in again} == {answer.json()["job_id"]}
        assert await _jobs(client) == [answer.json()["job_id"]]


async def test_a_progress_id_belongs_to_the_token_that_used_it_first(
    settings_factory: Callable[..., Settings], memory_runtime: InMemoryRuntime, catalog: Path
) -> None:
    settings = settings_factory(blueprint_dir=catalog, api_token="alice,bob")
    async with asgi_client(settings, memory_runtime) as client:
        mine = await _launch(client, "alice", progress_id="shared")
        assert mine.status_code == 201
        taken = await _launch(client, "bob", progress_id="shared")
        assert taken.status_code == 409
        assert check_problem(taken.json())["error"] == "progress_id_taken"
        progress = f"{API}/blueprints/launch/progress/shared"
        hidden = await client.get(progress, headers={"Authorization": "Bearer bob"})
        assert hidden.status_code == 404
        assert check_problem(hidden.json())["error"] == "launch_not_found"
        shown = await client.get(progress, headers={"Authorization": "Bearer alice"})
        assert shown.json()["job_id"] == mine.json()["job_id"]
        assert len(await _jobs(client, "alice")) == 1


async def test_without_tokens_every_caller_is_one_owner(
    settings_factory: Callable[..., Settings], memory_runtime: InMemoryRuntime, catalog: Path
) -> None:
    container = build_container(settings_factory(blueprint_dir=catalog))
    container.core.override(providers.Object(memory_runtime))
    app = create_app(container)

    def client_at(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 1234))
        return httpx.AsyncClient(transport=transport, base_url="http://gateway.test")

    async with client_at("10.0.0.1") as one, client_at("10.0.0.2") as other:
        first = await _launch(one, progress_id="ours")
        second = await _launch(other, progress_id="ours")
        assert first.status_code == second.status_code == 201
        assert first.json()["job_id"] == second.json()["job_id"]
        shown = await other.get(f"{API}/blueprints/launch/progress/ours")
        assert shown.status_code == 200


async def test_an_unexpected_error_answers_500_and_the_launch_says_failed(
    settings_factory: Callable[..., Settings], memory_runtime: InMemoryRuntime, catalog: Path
) -> None:
    async def broken(manifest_json: str, payloads: Mapping[str, bytes]) -> Any:
        raise RuntimeError("something unforeseen at /srv/secret")

    memory_runtime.submit_job = broken  # type: ignore[method-assign]
    settings = settings_factory(blueprint_dir=catalog)
    async with asgi_client(settings, memory_runtime, raise_app_exceptions=False) as client:
        answer = await _launch(client, progress_id="boom")
        assert answer.status_code == 500
        assert check_problem(answer.json())["error"] == "internal_error"
        progress = (await client.get(f"{API}/blueprints/launch/progress/boom")).json()
        assert (progress["status"], progress["current_phase"]) == ("failed", "submit")
        assert "/srv/secret" not in orjson.dumps(progress).decode()
        # It may have reached the runtime: the same id does not submit it again.
        again = await _launch(client, progress_id="boom")
        assert again.status_code == 409
        assert check_problem(again.json())["error"] == "launch_outcome_unknown"
