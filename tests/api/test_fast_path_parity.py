"""The routes answered in front of the framework (hot_routes.py) answer exactly as their
FastAPI routes do: the same requests, through an app with the fast path and one without."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from dependency_injector import providers

from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.config import Settings
from mn_api.container import Container, build_container
from mn_api.entrypoints.http import create_app
from tests.support import FakeClock, pipeline_manifest

API = "/api/v1"
# What differs between two answers to the same request: ids made for it.
_MADE = re.compile(rb'"request_id":"[0-9a-f]{32}"|pipeline-\d+-[0-9a-f]{12}|p-[0-9a-f]{8}')


def _client(container: Container, fast: bool) -> Any:
    app = create_app(container, fast_path=fast)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw.test")


@pytest.fixture
async def clients(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, ...]]:
    """Two apps on one container: the same runtime, stores and use cases."""
    container = build_container(settings)
    runtime = InMemoryRuntime(auto_run=False, clock=FakeClock())
    container.core.override(providers.Object(runtime))
    fast = _client(container, True)
    framework = _client(container, False)
    manifest = pipeline_manifest()
    manifest["initial_inputs"] = {"router": [{"n": n} for n in range(5)]}
    await fast.post(f"{API}/jobs", json={"manifest": manifest})
    for _ in range(21):  # more than a listing's default page
        await framework.post(f"{API}/jobs", json={"manifest": pipeline_manifest()})
    runtime.run_until_idle()
    yield fast, framework
    await fast.aclose()
    await framework.aclose()


def _same(answer: httpx.Response) -> tuple[int, str | None, bytes]:
    return answer.status_code, answer.headers.get("content-type"), _MADE.sub(b"*", answer.content)


async def test_reads_answer_the_same_through_both_paths(clients: tuple[Any, ...]) -> None:
    fast, framework = clients
    job_id = (await fast.get(f"{API}/jobs?limit=100")).json()["data"][-1]["job_id"]
    paths = [
        "/jobs", "/jobs?limit=1", "/jobs?limit=0", "/jobs?limit=x", "/jobs?include_terminal=false",
        "/jobs?status=completed", "/jobs?graph_id=pipeline", "/jobs?include_terminal=maybe",
        f"/jobs/{job_id}", f"/jobs/{job_id}?include=summary", f"/jobs/{job_id}?include=compact",
        f"/jobs/{job_id}?include=nope", "/jobs/nope-1-2", "/jobs/bad%20id",
        f"/jobs/{job_id}/events", f"/jobs/{job_id}/events?offset=3&limit=4",
        f"/jobs/{job_id}/events?tail=2", f"/jobs/{job_id}/events?type=job_completed",
        f"/jobs/{job_id}/events?limit=0", f"/jobs/{job_id}/events?tail=2&offset=1",
        f"/jobs/{job_id}/events?offset=-1", "/jobs/nope-1-2/events",
    ]  # fmt: skip
    for path in paths:
        through_fast = await fast.get(API + path)
        through_framework = await framework.get(API + path)
        assert _same(through_fast) == _same(through_framework), path


async def test_submissions_answer_the_same_through_both_paths(clients: tuple[Any, ...]) -> None:
    fast, framework = clients
    good = orjson.dumps({"manifest": pipeline_manifest()})
    bodies = [
        good,
        b"{",
        b"[]",
        b'{"manifest": {"graph_id": "x"}}',
        b'{"manifest_json": "{}"}',
        b'{"manifest": {}, "unexpected": 1}',
        b'{"payloads": {"../x": "a"}, "manifest": ' + orjson.dumps(pipeline_manifest()) + b"}",
    ]
    for body in bodies:
        headers = {"content-type": "application/json"}
        through_fast = await fast.post(f"{API}/jobs", content=body, headers=headers)
        through_framework = await framework.post(f"{API}/jobs", content=body, headers=headers)
        assert _same(through_fast) == _same(through_framework), body
