"""The simulated service registry (ClusterService.ListServices, ResolveService and
CheckServices): what running jobs register, the filters, the checks and the preflight."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.adapters.memory.services import CoreRefusal
from mn_api.adapters.memory.services.registry import ServiceRegistry
from tests.support import FakeClock

CLUSTER = "/mirrorneuron.cluster.v1.ClusterService/"


def _manifest(**extra: Any) -> dict[str, Any]:
    worker: dict[str, Any] = {
        "node_id": "worker",
        "agent_type": "executor",
        "config": {"environment": {"PORT": 8080, "MN_BLUEPRINT_CONFIG_JSON": '{"db": "pg"}'}},
        "services": [
            {
                "name": "search-index",
                "tags": ["v1", 2],
                "port": "${env.PORT}",
                "meta": {"db": "${config.db}", "job": "${job_id}", "missing": "${env.NOPE}"},
            },
            "ollama",
        ],
    }
    return {
        "manifest_version": "1",
        "graph_id": "svc-demo",
        "daemon": True,
        "services": {"name": "api", "address": "10.0.0.1"},
        "nodes": [{"node_id": "router", "agent_type": "router"}, worker],
        "edges": [{"from_node": "router", "to_node": "worker", "message_type": "task"}],
        "entrypoints": ["router"],
        **extra,
    }


async def _run(runtime: InMemoryRuntime, manifest: dict[str, Any]) -> str:
    job_id = (await runtime.submit_job(orjson.dumps(manifest).decode(), {})).job_id
    runtime.run_until_idle()
    assert runtime._jobs[job_id].status == "running"
    return job_id


async def _call(runtime: InMemoryRuntime, method: str, **request: Any) -> Any:
    answer = await runtime.services.call(CLUSTER + method, request)
    assert answer["version"] == 1
    return orjson.loads(answer["result_json"])


async def _list(runtime: InMemoryRuntime, **query: Any) -> list[dict[str, Any]]:
    document = await _call(runtime, "ListServices", query_json=orjson.dumps(query).decode())
    assert document["version"] == 1
    return document["services"]


async def _refusal(runtime: InMemoryRuntime, method: str, **request: Any) -> tuple[str, str]:
    with pytest.raises(CoreRefusal) as refused:
        await runtime.services.call(CLUSTER + method, request)
    return refused.value.code, refused.value.message


async def test_a_running_job_registers_its_services_until_it_ends(
    memory_runtime: InMemoryRuntime,
) -> None:
    job_id = (await memory_runtime.submit_job(orjson.dumps(_manifest()).decode(), {})).job_id
    assert await _list(memory_runtime) == []  # pending: nothing runs yet
    memory_runtime.run_until_idle()
    found = {s["id"]: s for s in await _list(memory_runtime)}
    assert sorted(found) == [
        f"{job_id}:job:api",
        f"{job_id}:worker:ollama",
        f"{job_id}:worker:search-index",
    ]
    node = memory_runtime.live_nodes[0]
    search = found[f"{job_id}:worker:search-index"]
    assert search["port"] == 8080 and search["tags"] == ["v1", "2"]
    assert search["meta"] == {"db": "pg", "job": job_id, "missing": ""}
    assert search["job_id"] == job_id and search["agent_id"] == "worker"
    assert search["source_agent_id"] == "worker" and search["node"] == node
    assert search["provider"] == "mirror_neuron" and search["origin"] == "internal"
    assert search["status"] == "passing"
    assert search["health"] == {"status": "passing", "checks": []}
    assert search["created_at"] == search["updated_at"] and search["checks"] == []
    job_level = found[f"{job_id}:job:api"]
    assert "agent_id" not in job_level and job_level["address"] == "10.0.0.1"
    assert job_level["node"] == node
    await memory_runtime.pause_job(job_id)
    assert len(await _list(memory_runtime)) == 3  # paused agents keep their services
    await memory_runtime.resume_job(job_id)
    await memory_runtime.cancel_job(job_id)
    memory_runtime.run_until_idle()
    assert await _list(memory_runtime) == []


async def test_the_filters(memory_runtime: InMemoryRuntime) -> None:
    first = await _run(memory_runtime, _manifest())
    second = await _run(memory_runtime, _manifest())
    assert len(await _list(memory_runtime)) == 6
    by_job = await _list(memory_runtime, job_id=second, name="")
    assert {s["job_id"] for s in by_job} == {second} and len(by_job) == 3
    found = [s["id"] for s in await _list(memory_runtime, agent_id="worker", name="ollama")]
    assert found == sorted([f"{first}:worker:ollama", f"{second}:worker:ollama"])  # by id
    assert len(await _list(memory_runtime, tags=["2", "v1"])) == 2
    assert await _list(memory_runtime, tags=["v1", "v2"]) == []
    assert len(await _list(memory_runtime, tags="v1")) == 2  # one tag alone is a list of one
    assert len(await _list(memory_runtime, node=memory_runtime.live_nodes[0])) == 6
    assert await _list(memory_runtime, node="elsewhere@host") == []
    assert await _list(memory_runtime, status="warning") == []
    # A query that is no JSON object filters nothing.
    document = await _call(memory_runtime, "ListServices", query_json="[not json")
    assert len(document["services"]) == 6
    # The core compares texts: a number is its text, a map has none.
    assert await _list(memory_runtime, name=5) == []
    assert await _refusal(memory_runtime, "ListServices", query_json='{"passing_only": "yes"}') == (
        "INTERNAL",
        "argument error",
    )
    code, message = await _refusal(memory_runtime, "ListServices", query_json='{"name": {}}')
    assert code == "INTERNAL" and "String.Chars" in message


async def test_resolve_takes_the_name_and_only_passing_instances_by_default(
    memory_runtime: InMemoryRuntime,
) -> None:
    job_id = await _run(memory_runtime, _manifest())
    resolved = await _call(
        memory_runtime, "ResolveService", name="search-index", query_json='{"name": "api"}'
    )
    assert [s["id"] for s in resolved["services"]] == [f"{job_id}:worker:search-index"]
    everything = await _call(memory_runtime, "ResolveService", name="", query_json="")
    assert len(everything["services"]) == 3
    tagged = await _call(
        memory_runtime, "ResolveService", name="ollama", query_json='{"tags":["x"]}'
    )
    assert tagged == {"services": [], "version": 1}


async def test_checks_decide_the_status_and_run_again_once_due(
    memory_runtime: InMemoryRuntime, clock: FakeClock
) -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    checked = {"name": "probe", "port": port, "checks": [{"type": "tcp", "address": "127.0.0.1"}]}
    manifest = _manifest(services=[checked, {"name": "broken", "checks": {"type": "grpc"}}])
    job_id = await _run(memory_runtime, manifest)
    async with server:
        services = {s["name"]: s for s in await _list(memory_runtime, job_id=job_id)}
    probe = services["probe"]
    assert probe["status"] == "passing" and probe["last_check_at"] == probe["updated_at"]
    [result] = probe["health"]["checks"]
    assert result["name"] == "tcp" and result["status"] == "passing" and result["required"]
    assert result["details"] == {"address": "127.0.0.1", "port": port}
    assert probe["checks"][0]["timeout_ms"] == 2000 and probe["checks"][0]["interval_ms"] == 10000
    broken = services["broken"]["health"]
    assert broken["status"] == "critical"
    assert broken["checks"][0]["error"] == "grpc health checks are not simulated"
    # Passing only: the resolver leaves out what its checks fail.
    resolved = await _call(memory_runtime, "ResolveService", name="broken", query_json="")
    assert resolved["services"] == []
    # The server is gone: the verdict changes once the checks are due again, not before.
    assert (await _list(memory_runtime, name="probe"))[0]["status"] == "passing"
    clock.advance(10)
    [again] = await _list(memory_runtime, name="probe")
    assert again["status"] == "critical"
    assert again["health"]["checks"][0]["error"] == (
        f"tcp connect failed for 127.0.0.1:{port}: :econnrefused"
    )


async def test_deployment_candidates_are_resolved_only_by_role(
    memory_runtime: InMemoryRuntime,
) -> None:
    stable = await _run(memory_runtime, _manifest())
    canary = await _run(memory_runtime, _manifest())
    await _list(memory_runtime)
    registry: ServiceRegistry = memory_runtime.services.group("services")
    registry.deployed(stable, deployment_id="dep-1", key="demo", version=1)
    registry.deployed(canary, deployment_id="dep-2", key="demo", version=2, role="canary")
    seen = await _list(memory_runtime, name="ollama")
    assert [s["job_id"] for s in seen] == [stable]
    assert seen[0]["deployment_role"] == "primary" and seen[0]["deployment_version"] == 1
    candidates = await _list(memory_runtime, name="ollama", deployment_role="canary")
    assert [s["job_id"] for s in candidates] == [canary]
    # A job marked before it runs registers its services with the deployment.
    later = (await memory_runtime.submit_job(orjson.dumps(_manifest()).decode(), {})).job_id
    registry.deployed(later, deployment_id="dep-3", key="other", version=7)
    memory_runtime.run_until_idle()
    [mine] = await _list(memory_runtime, name="ollama", job_id=later)
    assert (mine["deployment_id"], mine["deployment_key"]) == ("dep-3", "other")


async def test_nothing_is_listed_while_the_state_store_is_away(
    memory_runtime: InMemoryRuntime,
) -> None:
    await _run(memory_runtime, _manifest())
    memory_runtime.state_store_down()
    assert await _refusal(memory_runtime, "ListServices", query_json="") == (
        "INTERNAL",
        '"%Redix.ConnectionError{reason: :closed}"',
    )
    report = await _call(memory_runtime, "CheckServices", services_json='[{"name": "ollama"}]')
    [result] = report["results"]
    assert (
        result["status"] == "failed"
        and result["error"] == "%Redix.ConnectionError{reason: :closed}"
    )
    assert report["issues"][0]["code"] == "service.registry_unavailable"
    memory_runtime.state_store_up()
    assert len(await _list(memory_runtime)) == 3


@pytest.fixture
async def http_service() -> AsyncIterator[int]:
    """An HTTP server on 127.0.0.1 that answers 200 `ready` to anything."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nready")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def test_the_preflight_report(memory_runtime: InMemoryRuntime, http_service: int) -> None:
    job_id = await _run(memory_runtime, _manifest())
    url = f"http://127.0.0.1:{http_service}/health?api_key=s3cret&x=1"
    wanted = [
        {"name": "ollama"},
        {"name": "search-index", "tags": ["v1"]},
        {"name": "vector-db", "required": False},
        {"name": "gone"},
        {"name": "web", "checks": [{"type": "http", "url": url, "contains": "ready"}]},
        {"name": "picky", "checks": [{"type": "http", "url": url, "expected_status": 204}]},
        {"name": "script", "checks": [{"type": "script", "command": "true"}]},
        "not-an-object",
    ]
    report = await _call(
        memory_runtime, "CheckServices", services_json=orjson.dumps(wanted).decode()
    )
    assert report["version"] == "validation.report/v1"
    assert report["ok"] is False and report["status"] == "failed" and report["error_count"] == 4
    results = {r["name"]: r for r in report["results"]}
    assert [i["id"] for i in results["ollama"]["instances"]] == [f"{job_id}:worker:ollama"]
    assert set(results["ollama"]["instances"][0]) == {
        "id",
        "name",
        "node",
        "job_id",
        "agent_id",
        "tags",
        "status",
        "health",
    }
    assert results["search-index"]["ok"] and results["search-index"]["status"] == "passing"
    assert results["vector-db"] == {
        "name": "vector-db",
        "type": "service",
        "required": False,
        "ok": True,
        "status": "optional_missing",
        "instances": [],
    }
    assert results["gone"]["status"] == "missing" and results["gone"]["instances"] == []
    web = results["web"]
    assert web["ok"] and web["status"] == "passing"
    details = web["health"]["checks"][0]["details"]
    assert details["status"] == 200 and "s3cret" not in details["url"]
    assert "api_key=%5BREDACTED%5D" in details["url"]
    assert results["picky"]["health"]["checks"][0]["error"].endswith("returned 200, expected 204")
    assert "mn-python-sdk" in results["script"]["health"]["checks"][0]["error"]
    assert results["required_services.7"]["status"] == "invalid"
    assert report["errors"] == [
        "gone has no passing registered instances",
        "picky is not healthy",
        "script is not healthy",
        "required_services.7 must be an object",
    ]
    gone = report["issues"][0]
    assert gone["code"] == "service.required_missing" and gone["severity"] == "error"
    assert gone["location"] == {"source": "services", "path": "gone", "pointer": "/services/gone"}
    assert gone["actual"] == {"name": "gone", "tags": []}
    assert report["issues"][3]["location"]["pointer"] == "/services/required_services/7"
    assert "issue" not in str(report["results"])


async def test_the_preflight_refuses_text_that_is_not_json(
    memory_runtime: InMemoryRuntime,
) -> None:
    assert await _refusal(memory_runtime, "CheckServices", services_json="x") == (
        "INVALID_ARGUMENT",
        'body must be valid JSON: unexpected byte at position 0: 0x78 ("x")',
    )
    assert await _refusal(memory_runtime, "CheckServices", services_json="[1,") == (
        "INVALID_ARGUMENT",
        "body must be valid JSON: unexpected end of input at position 3",
    )
    empty = await _call(memory_runtime, "CheckServices", services_json="")
    assert empty["ok"] is True and empty["results"] == [] and empty["status"] == "passed"
    one = await _call(memory_runtime, "CheckServices", services_json='{"name": "x"}')
    assert [r["status"] for r in one["results"]] == ["missing"]


async def test_a_fresh_core_forgets_every_service(memory_runtime: InMemoryRuntime) -> None:
    await _run(memory_runtime, _manifest())
    assert len(await _list(memory_runtime)) == 3
    memory_runtime.reset()
    assert await _list(memory_runtime) == []


@pytest.mark.parametrize("release", ["1.1", "d26bef71"])
async def test_releases_without_the_registry(release: str) -> None:
    runtime = InMemoryRuntime(release=release, auto_run=False)
    for method in ("ListServices", "ResolveService", "CheckServices"):
        assert not runtime.services.offers(CLUSTER + method)
        assert await _refusal(runtime, method) == ("UNIMPLEMENTED", "Method not found!")


@pytest.mark.parametrize("release", ["1.2.5", "1.2.31"])
async def test_releases_with_the_registry(release: str) -> None:
    runtime = InMemoryRuntime(release=release, auto_run=False)
    await _run(runtime, _manifest())
    assert len(await _list(runtime)) == 3
