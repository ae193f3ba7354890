"""The later releases' operator routes, from what each core release reports."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.config import Settings
from tests.support import asgi_client, check_problem, pipeline_manifest

API = "/api/v1"


async def _submit(client: httpx.AsyncClient) -> str:
    answer = await client.post(f"{API}/jobs", json={"manifest": pipeline_manifest()})
    assert answer.status_code == 201, answer.text
    return answer.json()["job_id"]


async def test_unfinished_jobs_nodes_and_status(
    client: httpx.AsyncClient, memory_runtime: InMemoryRuntime
) -> None:
    done = await _submit(client)
    memory_runtime.run_until_idle()
    live = await _submit(client)
    unfinished = (await client.get(f"{API}/jobs/unfinished")).json()
    assert [job["job_id"] for job in unfinished["data"]] == [live]
    assert done not in str(unfinished)
    nodes = (await client.get(f"{API}/nodes")).json()["nodes"]
    summary = (await client.get(f"{API}/system/summary")).json()
    assert nodes == summary["nodes"] and nodes[0]["self"] is True
    status = (await client.get(f"{API}/runtime/status")).json()
    assert status["status"] == "ok"
    assert status["nodes"] == {"total": 1, "names": [nodes[0]["name"]]}
    assert status["jobs"]["total"] == 2
    assert status["jobs"]["by_status"] == {"completed": 1, "pending": 1}
    assert status["executors"]["capacity"] > 0


async def test_health_and_doctor(client: httpx.AsyncClient) -> None:
    health = (await client.get(f"{API}/runtime/health")).json()
    assert health["status"] == "ok" and health["latency_ms"] >= 0
    doctor = (await client.get(f"{API}/runtime/doctor")).json()
    assert doctor["status"] == "ok"
    assert [c["id"] for c in doctor["checks"]] == ["runtime", "nodes", "executors"]
    assert all(c["ok"] for c in doctor["checks"])


async def test_a_core_that_does_not_answer_is_told_by_health_and_doctor(
    settings: Settings,
) -> None:
    class Silent(InMemoryRuntime):
        async def ping(self, deadline_seconds: float) -> None:
            from mn_api.domain.errors import RuntimeUnavailableError

            raise RuntimeUnavailableError("the runtime cannot be reached")

    async with asgi_client(settings, Silent(auto_run=False)) as client:
        health = await client.get(f"{API}/runtime/health")
        assert health.status_code == 503
        assert check_problem(health.json())["error"] == "runtime_unavailable"
        doctor = (await client.get(f"{API}/runtime/doctor")).json()
    assert doctor["status"] == "degraded"
    assert doctor["checks"] == [
        {"id": "runtime", "ok": False, "message": "the runtime cannot be reached"}
    ]


async def test_removing_nodes(client: httpx.AsyncClient) -> None:
    name = (await client.get(f"{API}/nodes")).json()["nodes"][0]["name"]
    removed = await client.post(f"{API}/system/cluster/nodes:remove", json={"node_name": name})
    assert removed.status_code == 200, removed.text
    assert removed.json() == {"node_name": name, "status": "removed"}
    ghost = await client.post(f"{API}/system/cluster/nodes:remove", json={"node_name": "ghost@x"})
    assert ghost.status_code == 404
    assert check_problem(ghost.json())["error"] == "node_not_found"
    left = await client.post(f"{API}/system/cluster/nodes:leave")
    assert left.json() == {"node_name": name, "status": "removed"}
    empty = await client.post(f"{API}/system/cluster/nodes:remove", json={"node_name": ""})
    assert empty.status_code == 422


@pytest.mark.parametrize("release", ["d26bef71"])
async def test_remove_node_is_501_where_the_core_lacks_it(
    settings_factory: Callable[..., Settings], release: str
) -> None:
    runtime = InMemoryRuntime(release=release, auto_run=False)
    async with asgi_client(settings_factory(), runtime) as client:
        answer = await client.post(f"{API}/system/cluster/nodes:leave")
    assert answer.status_code == 501
    assert check_problem(answer.json())["detail"] == "RemoveNode is not supported by this core"


class FailingAfter(InMemoryRuntime):
    """A core whose summary answers `answers` times, then fails as a core going away does."""

    def __init__(self, answers: int) -> None:
        super().__init__(auto_run=False)
        self.answers = answers

    async def system_summary(self):  # type: ignore[no-untyped-def]
        from mn_api.domain.errors import RuntimeUnavailableError

        if self.answers <= 0:
            raise RuntimeUnavailableError("the runtime cannot be reached")
        self.answers -= 1
        return await super().system_summary()


@pytest.mark.parametrize("answers", [0, 1, 2, 3])
async def test_the_doctor_answers_its_findings_whichever_call_fails(
    settings: Settings, answers: int
) -> None:
    async with asgi_client(settings, FailingAfter(answers)) as client:
        response = await client.get(f"{API}/runtime/doctor")
    assert response.status_code == 200, response.text
    doctor = response.json()
    (runtime,) = [c for c in doctor["checks"] if c["id"] == "runtime"]  # one finding
    if answers < 2:  # the ping's or the summary's read failed: the core is the finding
        assert doctor["status"] == "degraded" and not runtime["ok"]
    else:
        assert runtime["ok"]
