"""Health, readiness, summary, metrics, docs, and how runtime failures are answered."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import orjson
import pytest

from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.config import Settings
from mn_api.container import Container
from mn_api.domain import errors as e
from mn_api.domain.documents import JsonDocument
from mn_api.entrypoints.http import create_app
from tests.support import asgi_client, free_port, pipeline_manifest

API = "/api/v1"


class UnreachableRuntime(InMemoryRuntime):
    """A runtime whose every call fails with the error given to it."""

    def __init__(self, error: e.DomainError) -> None:
        super().__init__(auto_run=False)
        self.error = error

    async def get_job(self, job_id: str) -> JsonDocument:
        raise self.error

    async def list_jobs(self, limit: int, include_terminal: bool) -> JsonDocument:
        raise self.error

    async def system_summary(self) -> JsonDocument:
        raise self.error

    async def ping(self, deadline_seconds: float) -> None:
        raise self.error


class MeteredRuntime(InMemoryRuntime):
    """A core whose summary carries metrics of its own."""

    async def system_summary(self) -> JsonDocument:
        summary = (await super().system_summary()).value
        return JsonDocument(orjson.dumps({**summary, "metrics": {"custom": 7}}), orjson.loads)


async def test_health_is_public_and_says_whether_auth_is_on(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{API}/health")
    assert response.json() == {
        "status": "ok",
        "auth": "disabled",
        "api_contract": "mirrorneuron.rest.v1",
    }
    assert response.headers["x-request-id"]


async def test_ready_when_the_runtime_answers(client: httpx.AsyncClient) -> None:
    assert (await client.get(f"{API}/ready")).json() == {"status": "ready"}


async def test_summary_and_metrics_fallback(
    client: httpx.AsyncClient, memory_runtime: InMemoryRuntime
) -> None:
    await client.post(
        f"{API}/jobs",
        json={
            "manifest": {
                "manifest_version": "1",
                "graph_id": "g",
                "nodes": [{"node_id": "a", "agent_type": "sensor"}],
                "entrypoints": ["a"],
            }
        },
    )
    summary = (await client.get(f"{API}/system/summary")).json()
    assert summary["nodes"][0]["executor_pools"]["default"]["capacity"] > 0
    metrics = (await client.get(f"{API}/metrics")).json()
    # The newest core reports its own metrics; the gateway passes them on.
    assert metrics["jobs"]["total"] == 1 and metrics["jobs"]["by_status"]["pending"] == 1
    assert metrics["nodes"] == {"total": 1} and "source" not in metrics


async def test_metrics_are_derived_from_the_summary_of_older_cores(settings: Settings) -> None:
    runtime = InMemoryRuntime(release="1.2.5", auto_run=False)
    async with asgi_client(settings, runtime) as client:
        await client.post(f"{API}/jobs", json={"manifest": pipeline_manifest()})
        metrics = (await client.get(f"{API}/metrics")).json()
    assert metrics == {
        "jobs": {"total": 1, "by_status": {"pending": 1}},
        "nodes": {"total": 1},
        "source": "system_summary",
    }


async def test_metrics_come_from_the_core_when_it_has_them(settings: Settings) -> None:
    async with asgi_client(settings, MeteredRuntime(auto_run=False)) as client:
        assert (await client.get(f"{API}/metrics")).json() == {"custom": 7}


@pytest.mark.parametrize(
    ("error", "status", "code", "retry_after"),
    [
        (e.RuntimeUnavailableError("core down"), 503, "runtime_unavailable", True),
        (
            e.RuntimeOverloadedError("resource_overloaded: memory=0.99 threshold=0.95"),
            503,
            "resource_overloaded",
            True,
        ),
        (e.RuntimeTimeoutError("deadline exceeded"), 504, "runtime_timeout", False),
        (e.NotSupportedError("not supported by this core"), 501, "not_supported", False),
        (e.RuntimeAuthError("core refused the gateway"), 502, "runtime_auth_failed", False),
        (e.RuntimeFailureError("boom"), 502, "runtime_error", False),
        (e.InvalidArgumentError("bad id"), 400, "invalid_argument", False),
    ],
)
async def test_runtime_failures_map_to_problems(
    settings: Settings, error: e.DomainError, status: int, code: str, retry_after: bool
) -> None:
    async with asgi_client(settings, UnreachableRuntime(error)) as client:
        response = await client.get(f"{API}/jobs/some-job")
        assert response.status_code == status
        body = response.json()
        assert body["error"] == code and body["detail"] == error.detail
        assert ("retry-after" in response.headers) is retry_after
        assert (await client.get(f"{API}/health")).status_code == 200


async def test_ready_is_503_when_the_runtime_does_not_answer(settings: Settings) -> None:
    runtime = UnreachableRuntime(e.RuntimeUnavailableError("connection refused"))
    async with asgi_client(settings, runtime) as client:
        response = await client.get(f"{API}/ready")
        assert response.status_code == 503 and response.json()["error"] == "not_ready"


async def test_unexpected_errors_hide_their_details(settings: Settings) -> None:
    class Broken(InMemoryRuntime):
        async def list_jobs(self, limit: int, include_terminal: bool) -> JsonDocument:
            raise KeyError("/secret/server/path")

    runtime = Broken(auto_run=False)
    async with asgi_client(settings, runtime, raise_app_exceptions=False) as client:
        response = await client.get(f"{API}/jobs")
    assert response.status_code == 500
    assert response.json()["error"] == "internal_error"
    assert "secret" not in response.text and "Traceback" not in response.text


async def test_openapi_and_docs_are_served_offline(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert f"{API}/jobs/{{job_id}}/dead-letters/{{index}}/replay" in spec["paths"]
    docs = (await client.get("/docs")).text
    assert "/docs-assets/swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()
    redoc = (await client.get("/redoc")).text
    assert "/docs-assets/redoc.standalone.js" in redoc
    asset = await client.get("/docs-assets/swagger-ui-bundle.js")
    assert asset.status_code == 200 and len(asset.content) > 100_000


def test_every_app_is_built_by_its_own_factory_call(
    container: Container, settings_factory: Callable
) -> None:
    first, second = create_app(container), create_app(container)
    assert first is not second


async def test_ready_names_a_shared_redis_that_does_not_answer(
    settings_factory: Callable[..., Settings], memory_runtime: InMemoryRuntime
) -> None:
    port = free_port()  # nothing listens there
    settings = settings_factory(
        redis_url=f"redis://gateway:s3cret@127.0.0.1:{port}/0", ready_timeout_seconds=1
    )
    async with asgi_client(settings, memory_runtime, lifespan=True) as client:
        response = await client.get("/api/v1/ready")
    assert response.status_code == 503
    problem = response.json()
    assert problem["error"] == "not_ready"
    assert f"Redis (redis://127.0.0.1:{port}/0) does not answer" in problem["detail"]
    assert "s3cret" not in response.text and "gateway:" not in response.text


async def test_readiness_may_leave_redis_out_and_the_probe_paths_need_no_token(
    settings_factory: Callable[..., Settings], memory_runtime: InMemoryRuntime
) -> None:
    port = free_port()  # nothing listens there
    settings = settings_factory(
        redis_url=f"redis://127.0.0.1:{port}/0",
        ready_timeout_seconds=1,
        ready_requires_redis=False,
        api_token="probe-token-0123456789",
    )
    async with asgi_client(settings, memory_runtime, lifespan=True) as client:
        for path in ("/api/v1/ready", "/readyz"):
            answer = await client.get(path)
            assert (answer.status_code, answer.json()) == (200, {"status": "ready"}), path
        for path in ("/api/v1/health", "/healthz", "/livez"):
            answer = await client.get(path)
            assert (answer.status_code, answer.json()["status"]) == (200, "ok"), path
        assert (await client.get("/api/v1/jobs")).status_code == 401
        assert (await client.get("/readyz/more")).status_code == 401
    settings = settings_factory(redis_url=f"redis://127.0.0.1:{port}/0", ready_timeout_seconds=1)
    async with asgi_client(settings, memory_runtime, lifespan=True) as client:
        answer = await client.get("/readyz")
    assert answer.status_code == 503 and answer.json()["error"] == "not_ready"


@pytest.mark.parametrize("release", ["1.1", "1.2.5", "1.2.31", "d26bef71"])
async def test_hardware_comes_in_one_shape_whatever_the_release_sends(
    settings: Settings, release: str
) -> None:
    """What the 1.2.5 dashboard reads: `gpu` a list it can count, and no memory total
    without what is available (a total alone reads as 100% used)."""
    runtime = InMemoryRuntime(release=release, auto_run=False)
    sent = (await runtime.system_summary()).value["nodes"][0]["hardware"]
    async with asgi_client(settings, runtime) as client:
        node = (await client.get(f"{API}/system/summary")).json()["nodes"][0]
    hardware = node["hardware"]
    assert hardware["gpu"] == [] and hardware["gpu_count"] == 0
    if isinstance(sent["gpu"], str):  # generation A: "Not available"
        assert hardware["gpu_status"] == sent["gpu"]
    assert "total_bytes" not in hardware["memory"]
    assert hardware["memory"]["capacity_bytes"] == sent["memory"]["total_bytes"]
    assert hardware["memory"]["total_mb"] == sent["memory"]["total_mb"]
    assert hardware["cpu"] == sent["cpu"]


async def test_gpu_devices_and_reported_memory_pass_through(settings: Settings) -> None:
    class GpuCore(InMemoryRuntime):
        async def system_summary(self) -> JsonDocument:
            node = {
                "name": "gpu@host",
                "hardware": {
                    "gpu": {"count": 2, "devices": [{"id": "0"}, {"id": "1"}]},
                    "memory": {"total_bytes": 100, "available_bytes": 40},
                },
            }
            return JsonDocument(orjson.dumps({"nodes": [node], "jobs": []}), orjson.loads)

    async with asgi_client(settings, GpuCore(auto_run=False)) as client:
        hardware = (await client.get(f"{API}/system/summary")).json()["nodes"][0]["hardware"]
    assert hardware["gpu"] == [{"id": "0"}, {"id": "1"}] and hardware["gpu_count"] == 2
    assert hardware["memory"] == {"total_bytes": 100, "available_bytes": 40}
