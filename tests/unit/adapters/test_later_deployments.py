"""The simulated core's deployments (JobService, 1.2.5 and newer), on a runtime that runs
its jobs (a deploy waits until its job runs)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.adapters.memory.services import CoreRefusal
from mn_api.adapters.memory.services import deployment_policy as dp
from tests.support import pipeline_manifest
from tests.support.simulated_core import job_call as call
from tests.support.simulated_core import job_refusal as refusal
from tests.support.simulated_core import running_runtime, service_manifest

JOB = "/mirrorneuron.job.v1.JobService/"


@pytest.fixture
async def runtime() -> AsyncIterator[InMemoryRuntime]:
    async with running_runtime() as runtime:
        yield runtime


def service(**node_config: Any) -> dict[str, Any]:
    """A service manifest (a daemon) named "reviews"."""
    return {**service_manifest(**node_config), "job_name": "reviews"}


async def deploy(
    runtime: InMemoryRuntime, manifest: dict[str, Any], key: str = "", **policy: Any
) -> Any:
    return await call(
        runtime,
        "DeployJob",
        manifest_json=json.dumps(manifest),
        payloads={"in/a.txt": b"a"},
        deployment_key=key,
        update_policy_json=json.dumps({"version": 1, **policy}) if policy else "",
        wait=False,
    )


async def job_status(runtime: InMemoryRuntime, job_id: str) -> str:
    return json.loads((await runtime.get_job(job_id)).raw)["job"]["status"]


async def test_the_first_deploy_of_a_key_starts_its_job(runtime: InMemoryRuntime) -> None:
    result = await deploy(runtime, service(), strategy="canary", canary=1)
    deployment, record = result["deployment"], result["version"]
    # `version` is the version record: the core adds no interface version to this answer.
    assert set(result) == {"deployment", "version", "job_id", "status"}
    assert result["status"] == "successful" and deployment["status"] == "successful"
    assert re.fullmatch(r"dep_reviews_\d+", deployment["deployment_id"])
    assert deployment["deployment_key"] == "reviews"
    assert deployment["current_job_id"] == deployment["stable_job_id"] == result["job_id"]
    assert deployment["current_version"] == deployment["stable_version"] == "1"
    assert deployment["health"]["job_status"] == "running"
    assert deployment["strategy"] == "canary"
    assert deployment["policy"] == {
        **dp.DEFAULTS, "strategy": "canary", "canary": 1, "version": 1,
    }  # fmt: skip
    assert [e["type"] for e in deployment["events"]] == ["deployment_created"]
    assert deployment["events"][0]["job_id"] == result["job_id"]
    assert record["version"] == "1" and record["stable"] is True and record["tag"] is None
    assert record["job_id"] == result["job_id"] and record["scheduler"] == {"job_type": "service"}
    assert record["manifest"]["policies"]["update"] == {
        "version": 1,
        "strategy": "canary",
        "canary": 1,
    }
    assert record["manifest_ref"]["bundle_fingerprint"]
    assert await job_status(runtime, result["job_id"]) == "running"
    got = await call(runtime, "GetDeployment", id_or_key="reviews")
    assert got["deployment_id"] == deployment["deployment_id"] and got["version"] == 1
    assert [v["version"] for v in got["versions"]] == ["1"]


def test_the_deployment_key_and_policy_as_the_core_reads_them() -> None:
    manifest = {
        "graph_id": "g",
        "job_name": "named",
        "metadata": {"mn_cli": {"deployment_key": "from-cli"}},
        "deployment": {"key": "from-deployment"},
        "policies": {"deployment_key": "from-policies", "update": {"strategy": "Blue_Green"}},
    }
    assert dp.deployment_key(manifest, "asked") == "asked"
    assert dp.deployment_key(manifest, "  ") == "from-cli"
    assert dp.deployment_key({**manifest, "metadata": {}}) == "from-deployment"
    assert dp.deployment_key({**manifest, "metadata": {}, "deployment": {}}) == "from-policies"
    assert dp.deployment_key({"graph_id": "g", "job_name": "named"}) == "named"
    assert dp.deployment_key({"graph_id": "g"}) == "g"
    assert dp.deployment_id("my key/v2", 7) == "dep_my-key-v2_7"
    policy = dp.normalize(manifest, {"canary": "2", "auto_promote": "yes", "max_parallel": -1})
    assert policy["strategy"] == "blue-green" and policy["canary"] == 2
    assert policy["auto_promote"] is True and policy["max_parallel"] == 1
    assert dp.normalize({}, {"strategy": "surge"})["strategy"] == "rolling"


async def test_a_batch_job_is_run_again_as_a_recorded_version(runtime: InMemoryRuntime) -> None:
    first = await deploy(runtime, pipeline_manifest(), key="nightly")
    assert first["status"] == "successful"
    second = await deploy(runtime, pipeline_manifest(), key="nightly")
    assert "status" not in second and second["job_id"] != first["job_id"]
    deployment = second["deployment"]
    assert deployment["status"] == "version_recorded"
    assert deployment["deployment_id"] != first["deployment"]["deployment_id"]
    assert deployment["created_at"] == first["deployment"]["created_at"]
    assert deployment["current_version"] == "2" and deployment["stable_version"] == "1"
    assert second["version"]["stable"] is False
    assert [e["type"] for e in deployment["events"]] == [
        "deployment_created",
        "deployment_version_recorded",
    ]
    # Every deployment record stays; the key points to the newest.
    listed = await call(runtime, "ListDeployments", query_json="{}")
    assert [d["deployment_id"] for d in listed["data"]] == sorted(
        [first["deployment"]["deployment_id"], deployment["deployment_id"]]
    )
    old = await call(runtime, "GetDeployment", id_or_key=first["deployment"]["deployment_id"])
    assert old["status"] == "successful"
    by_status = await call(runtime, "ListDeployments", query_json='{"status": "version_recorded"}')
    assert [d["deployment_id"] for d in by_status["data"]] == [deployment["deployment_id"]]


async def test_an_unchanged_service_is_left_alone(runtime: InMemoryRuntime) -> None:
    first = await deploy(runtime, service())
    again = await deploy(runtime, service())
    assert "status" not in again and again["job_id"] == first["job_id"]
    deployment = again["deployment"]
    assert deployment["deployment_id"] == first["deployment"]["deployment_id"]
    assert deployment["status"] == "successful"
    assert deployment["description"] == "deployment contained no runtime changes"
    assert deployment["events"][-1]["type"] == "deployment_noop"
    assert again["version"]["version"] == "2" and again["version"]["stable"] is True


async def test_a_canary_waits_to_be_promoted(runtime: InMemoryRuntime) -> None:
    first = await deploy(runtime, service())
    changed = service(worker={"model": "larger"})
    result = await deploy(runtime, changed, strategy="canary")
    deployment = result["deployment"]
    assert result["status"] == deployment["status"] == "awaiting_promotion"
    assert deployment["mode"] == "agent_level" and deployment["changed_agent_ids"] == ["worker"]
    assert deployment["canary_agent_ids"] == ["worker"]
    assert deployment["current_job_id"] == first["job_id"] == result["job_id"]
    assert [e["type"] for e in deployment["events"]][-2:] == [
        "deployment_started",
        "deployment_canary_ready",
    ]
    assert result["version"]["stable"] is False
    promoted = await call(runtime, "PromoteDeployment", id_or_key="reviews")
    assert promoted["status"] == "successful" and promoted["version"]["stable"] is True
    assert promoted["deployment"]["stable_version"] == "2"
    assert promoted["deployment"]["events"][-1]["type"] == "deployment_successful"
    assert await refusal(runtime, "PromoteDeployment", id_or_key="reviews") == (
        "INVALID_ARGUMENT",
        '"deployment is successful, expected awaiting_promotion"',
    )
    # The promoted agents are what the job now runs: the same manifest again changes nothing.
    same = await deploy(runtime, changed)
    assert same["deployment"]["events"][-1]["type"] == "deployment_noop"


async def test_a_rolling_update_finishes_at_once(runtime: InMemoryRuntime) -> None:
    await deploy(runtime, service())
    result = await deploy(runtime, service(worker={"a": 1}, collect={"b": 2}), max_parallel=1)
    deployment = result["deployment"]
    assert result["status"] == "successful" and deployment["mode"] == "agent_level"
    assert deployment["changed_agent_ids"] == ["worker", "collect"]
    assert deployment["remaining_agent_ids"] == []
    assert deployment["description"] == "agent-level deployment completed"


async def test_a_new_topology_goes_blue_green(runtime: InMemoryRuntime) -> None:
    first = await deploy(runtime, service())
    wider = service()
    wider["nodes"] = [*wider["nodes"], {"node_id": "audit", "agent_type": "router"}]
    result = await deploy(runtime, wider)
    deployment = result["deployment"]
    assert result["status"] == "successful" and deployment["mode"] == "blue_green"
    assert result["job_id"] != first["job_id"]
    assert deployment["current_job_id"] == deployment["stable_job_id"] == result["job_id"]
    assert deployment["source_job_id"] == first["job_id"]
    assert await job_status(runtime, first["job_id"]) in ("cancelled", "cancelling")
    # As a canary the candidate waits, the old job still current.
    wider["nodes"] = [*wider["nodes"], {"node_id": "audit2", "agent_type": "router"}]
    candidate = await deploy(runtime, wider, canary=1)
    waiting = candidate["deployment"]
    assert candidate["status"] == "awaiting_promotion"
    assert waiting["current_job_id"] == result["job_id"] != candidate["job_id"]
    promoted = await call(runtime, "PromoteDeployment", id_or_key=waiting["deployment_id"])
    assert promoted["deployment"]["current_job_id"] == candidate["job_id"]
    assert await job_status(runtime, result["job_id"]) in ("cancelled", "cancelling")


async def test_the_services_of_a_deployed_job_carry_the_deployment(
    runtime: InMemoryRuntime,
) -> None:
    async def services(**query: Any) -> list[dict[str, Any]]:
        answer = await runtime.services.call(
            "/mirrorneuron.cluster.v1.ClusterService/ListServices",
            {"query_json": json.dumps(query)},
        )
        return json.loads(answer["result_json"])["services"]

    first = await deploy(runtime, {**service(), "services": {"name": "api", "port": 80}})
    [api] = await services(name="api")
    assert api["job_id"] == first["job_id"]
    assert api["deployment_key"] == "reviews" and api["deployment_version"] == "1"
    assert api["deployment_id"] == first["deployment"]["deployment_id"]
    assert api["deployment_role"] == "primary"
    # A blue/green candidate's services are found only by their role until promoted.
    wider = {**service(), "services": {"name": "api", "port": 81}}
    wider["nodes"] = [*wider["nodes"], {"node_id": "audit", "agent_type": "router"}]
    candidate = await deploy(runtime, wider, canary=1)
    assert [s["job_id"] for s in await services(name="api")] == [first["job_id"]]
    [waiting] = await services(name="api", deployment_role="candidate")
    assert waiting["job_id"] == candidate["job_id"] and waiting["deployment_version"] == "2"
    await call(runtime, "PromoteDeployment", id_or_key="reviews")
    [promoted] = await services(name="api")
    assert promoted["job_id"] == candidate["job_id"]
    assert promoted["deployment_role"] == "primary"


async def test_rollbacks(runtime: InMemoryRuntime) -> None:
    await deploy(runtime, pipeline_manifest(), key="batch")
    assert await refusal(runtime, "RollbackDeployment", id_or_key="batch") == (
        "INVALID_ARGUMENT",
        '"no rollback target found for deployment batch"',
    )
    await deploy(runtime, service())
    await deploy(runtime, service(worker={"v": 2}))
    # Tags are never set: no tag finds a version.
    assert (await refusal(runtime, "RollbackDeployment", id_or_key="reviews", tag="v1"))[1] == (
        '"no rollback target found for deployment reviews"'
    )
    back = await call(runtime, "RollbackDeployment", id_or_key="reviews", version="1", reason="")
    assert back["version"]["version"] == "3"
    assert "model" not in json.dumps(back["version"]["manifest"]["nodes"][1])
    assert back["version"]["manifest"]["nodes"][1].get("config") is None
    # With neither, the newest stable version other than the current one.
    again = await call(runtime, "RollbackDeployment", id_or_key="reviews")
    assert again["version"]["version"] == "4"
    assert again["version"]["manifest"]["nodes"][1]["config"] == {"v": 2}
    assert await refusal(runtime, "RollbackDeployment", id_or_key="nothing") == (
        "INVALID_ARGUMENT",
        '"deployment nothing was not found"',
    )


async def test_pause_resume_and_fail_only_mark_the_deployment(runtime: InMemoryRuntime) -> None:
    first = await deploy(runtime, service())
    paused = await call(runtime, "PauseDeployment", id_or_key="reviews", reason="")
    assert paused["status"] == "paused" and paused["description"] == ""
    assert paused["version"] == 1 and paused["events"][-1] == {
        "type": "deployment_paused",
        "reason": "",
        "timestamp": paused["events"][-1]["timestamp"],
    }
    resumed = await call(
        runtime, "ResumeDeployment", id_or_key=first["deployment"]["deployment_id"]
    )
    assert resumed["status"] == "running" and resumed["events"][-1]["type"] == "deployment_running"
    failed = await call(runtime, "FailDeployment", id_or_key="reviews", reason="smoke failed")
    assert failed["status"] == "failed" and failed["description"] == "smoke failed"
    assert await job_status(runtime, first["job_id"]) == "running"
    for _ in range(120):
        await call(runtime, "PauseDeployment", id_or_key="reviews", reason="again")
    kept = (await call(runtime, "GetDeployment", id_or_key="reviews"))["events"]
    assert len(kept) == 100 and {e["type"] for e in kept} == {"deployment_paused"}
    for rpc in ("PauseDeployment", "ResumeDeployment", "FailDeployment", "PromoteDeployment"):
        assert await refusal(runtime, rpc, id_or_key="ghost") == (
            "INVALID_ARGUMENT",
            '"deployment ghost was not found"',
        )
    assert await refusal(runtime, "GetDeployment", id_or_key="ghost") == (
        "NOT_FOUND",
        '"deployment ghost was not found"',
    )


async def test_refused_deploys(runtime: InMemoryRuntime) -> None:
    code, message = await refusal(
        runtime, "DeployJob", manifest_json='{"nodes": []}', deployment_key="x"
    )
    assert code == "INVALID_ARGUMENT" and message.startswith('["')
    # A job that ends before it runs (held in scheduling, then cancelled) is refused.
    held = service()
    held["metadata"] = {"simulate": {"scheduling_ms": 5_000}}
    deploy = asyncio.create_task(
        refusal(runtime, "DeployJob", manifest_json=json.dumps(held), deployment_key="broken")
    )
    for _ in range(500):
        listed = (await runtime.list_jobs(10, True)).value["data"]
        if listed:
            break
        await asyncio.sleep(0.01)
    await runtime.cancel_job(listed[0]["job_id"])
    code, message = await deploy
    assert code == "INVALID_ARGUMENT"
    assert re.fullmatch(r'"deployment job \S+ reached cancelled: .*"', message)
    assert (await call(runtime, "ListDeployments", query_json='{"deployment_key": "broken"}')) == {
        "data": [],
        "version": 1,
    }


async def test_an_update_of_an_unknown_key_deploys_it(runtime: InMemoryRuntime) -> None:
    result = await call(
        runtime,
        "UpdateDeployment",
        deployment_key="fresh",
        manifest_json=json.dumps(service()),
        update_policy_json="",
    )
    assert result["status"] == "successful"
    assert result["deployment"]["deployment_key"] == "fresh"
    update = await call(
        runtime,
        "UpdateDeployment",
        deployment_key="fresh",
        manifest_json=json.dumps(service(worker={"v": 2})),
    )
    assert update["status"] == "successful" and update["version"]["version"] == "2"


async def test_older_cores_have_no_deployments() -> None:
    runtime = InMemoryRuntime(auto_run=False, release="1.1")
    with pytest.raises(CoreRefusal) as refused:
        await runtime.services.call(JOB + "GetDeployment", {"id_or_key": "x"})
    assert refused.value.code == "UNIMPLEMENTED"
