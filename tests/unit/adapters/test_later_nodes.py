"""The simulated node administration (1.2.5 and newer): node states in the summary and the
resource document, maintenance, drains and their per-job actions, reconciling, the join
handshake and AddNode."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.adapters.memory.services import CoreRefusal
from mn_api.adapters.memory.services._base import CLUSTER, OPERATIONS
from tests.support import FakeClock, pipeline_manifest

MN1, MN2, MN3 = "mn1@127.0.0.1", "mn2@127.0.0.1", "mn3@127.0.0.1"


def service(recovery: str | None = "cluster_recover", job_type: str = "service") -> dict:
    policies: dict[str, Any] = {"job_type": job_type}
    if recovery:
        policies["recovery_mode"] = recovery
    return {**pipeline_manifest(), "daemon": True, "policies": policies}


@pytest.fixture
def runtime(clock: FakeClock) -> InMemoryRuntime:
    return InMemoryRuntime(auto_run=False, clock=clock, nodes=3)


async def submit(runtime: InMemoryRuntime, manifest: dict[str, Any]) -> str:
    return (await runtime.submit_job(orjson.dumps(manifest).decode(), {})).job_id


async def call(runtime: InMemoryRuntime, method: str, **request: Any) -> dict[str, Any]:
    answer = await runtime.services.call(CLUSTER + method, request)
    return orjson.loads(answer["result_json"]) if "result_json" in answer else answer


def nodes_of(runtime: InMemoryRuntime, job_id: str) -> set[str]:
    return {agent.node for agent in runtime._jobs[job_id].agents.values()}


def summary_node(runtime: InMemoryRuntime, name: str) -> dict[str, Any]:
    return next(n for n in runtime.system_summary_as().value["nodes"] if n["name"] == name)


async def test_the_summary_and_the_resources_tell_each_nodes_state(
    runtime: InMemoryRuntime,
) -> None:
    node = summary_node(runtime, MN2)
    assert node["status"] == "healthy" and node["scheduling_eligible"] is True
    store = node["coordination_store"]
    assert set(store) == {"identity", "namespace", "role", "writable_primary", "healthy"}
    assert store["healthy"] is True and store["writable_primary"] is True
    # One store: every node reports the same identity.
    assert summary_node(runtime, MN1)["coordination_store"] == store
    on = await call(runtime, "SetNodeMaintenance", node_name=MN2, enabled=True, reason="disk")
    assert on["status"] == "maintenance" and on["scheduling_eligible"] is False
    assert on["maintenance"]["enabled"] is True and on["maintenance"]["reason"] == "disk"
    assert on["node_state"]["status"] == "maintenance" and on["version"] == 1
    node = summary_node(runtime, MN2)
    assert (node["status"], node["scheduling_eligible"]) == ("maintenance", False)
    resource = orjson.loads(
        (await runtime.services.call(CLUSTER + "GetResource", {}))["resource_json"]
    )
    listed = {n["name"]: (n["status"], n["scheduling_eligible"]) for n in resource["nodes"]}
    assert listed[MN2] == ("maintenance", False) and listed[MN1] == ("healthy", True)
    # No new work goes to a node in maintenance.
    for _ in range(3):
        assert MN2 not in nodes_of(runtime, await submit(runtime, pipeline_manifest()))
    off = await call(runtime, "SetNodeMaintenance", node_name=MN2, enabled=False)
    assert off["status"] == "healthy" and off["scheduling_eligible"] is True
    assert off["maintenance"]["reason"] == "operator changed node maintenance"
    assert "disabled_at" in off["maintenance"]


def test_older_releases_say_nothing_of_node_states() -> None:
    lone = InMemoryRuntime(release="1.1", auto_run=False)
    node = lone.system_summary_as().value["nodes"][0]
    assert "status" not in node and "coordination_store" not in node


async def test_drain_status_is_never_an_error(runtime: InMemoryRuntime) -> None:
    unknown = await call(runtime, "GetNodeDrainStatus", node_name="ghost@nowhere")
    assert unknown == {
        "node": "ghost@nowhere",
        "status": "unknown",
        "scheduling_eligible": True,
        "drain": {},
        "maintenance": {},
        "node_state": {"node": "ghost@nowhere"},
        "version": 1,
    }
    member = await call(runtime, "GetNodeDrainStatus", node_name=MN3)
    assert member["status"] == "healthy" and member["drain"] == {}


async def test_draining_migrates_recoverable_jobs_and_puts_the_node_in_maintenance(
    runtime: InMemoryRuntime,
) -> None:
    jobs = [await submit(runtime, service()) for _ in range(2)]
    on_node = [job_id for job_id in jobs if MN2 in nodes_of(runtime, job_id)]
    assert on_node
    result = await call(runtime, "DrainNode", node_name=MN2, reason="rack move")
    assert result["node"] == MN2 and result["status"] == "complete"
    assert result["operation_id"].startswith("op-")
    assert result["counters"] == {"checked": len(on_node), "migrated": len(on_node)}
    action = result["actions"][0]
    assert action["status"] == "migrated" and action["job_type"] == "service"
    assert action["reconcile"]["recovered"] == 1 and action["reconcile"]["checked"] == 1
    for job_id in jobs:
        assert MN2 not in nodes_of(runtime, job_id)
    status = await call(runtime, "GetNodeDrainStatus", node_name=MN2)
    assert status["status"] == "maintenance" and status["scheduling_eligible"] is False
    assert status["drain"]["status"] == "complete" and status["drain"]["reason"] == "rack move"
    assert status["drain"]["completed_at"]
    undrained = await call(runtime, "CancelNodeDrain", node_name=MN2, mark_eligible=True)
    assert undrained["status"] == "cancelled" and undrained["scheduling_eligible"] is True
    assert undrained["reason"] == "operator cancelled node drain"
    assert undrained["node_state"]["status"] == "healthy"
    assert undrained["node_state"]["drain"]["status"] == "cancelled"
    assert summary_node(runtime, MN2)["status"] == "healthy"


async def test_batch_jobs_keep_the_node_draining_until_the_deadline(
    runtime: InMemoryRuntime,
) -> None:
    job_id = await submit(runtime, service(job_type="batch"))
    node = sorted(nodes_of(runtime, job_id))[0]
    result = await call(runtime, "DrainNode", node_name=node, deadline_ms=60_000)
    assert result["status"] == "draining"
    assert result["actions"][0]["status"] == "waiting"
    assert result["counters"] == {"checked": 1, "waiting": 1}
    assert summary_node(runtime, node)["status"] == "draining"
    kept = await call(runtime, "CancelNodeDrain", node_name=node)
    assert kept["node_state"]["status"] == "maintenance" and kept["scheduling_eligible"] is False


async def test_a_node_without_jobs_drains_at_once_and_keeps_its_state(
    runtime: InMemoryRuntime,
) -> None:
    result = await call(runtime, "DrainNode", node_name=MN3)
    assert {k: result[k] for k in ("status", "actions", "counters")} == {
        "status": "complete",
        "actions": [],
        "counters": {"checked": 0},
    }
    assert summary_node(runtime, MN3)["status"] == "healthy"


async def test_reconciling_pauses_jobs_not_configured_for_cluster_recovery(
    runtime: InMemoryRuntime,
) -> None:
    job_id = await submit(runtime, service(recovery=None))
    node = sorted(nodes_of(runtime, job_id))[0]
    dry = await call(runtime, "ReconcileNode", node_name=node, dry_run=True)
    assert dry["paused"] == 1 and dry["checked"] == 1
    assert (await runtime.get_job(job_id)).value["job"]["status"] == "pending"
    done = await call(runtime, "ReconcileNode", node_name=node, reason="node lost")
    assert {k: done[k] for k in ("checked", "recovered", "paused", "blocked", "skipped")} == {
        "checked": 1,
        "recovered": 0,
        "paused": 1,
        "blocked": 0,
        "skipped": 0,
    }
    assert done["jobs"][0]["action"] == "paused_for_review"
    assert done["jobs"][0]["reason"] == "node lost"
    assert (await runtime.get_job(job_id)).value["job"]["status"] == "paused"


async def test_reconcile_and_drain_refusals_are_internal_and_quoted(
    runtime: InMemoryRuntime,
) -> None:
    for method in ("ReconcileNode", "DrainNode"):
        with pytest.raises(CoreRefusal) as refused:
            await call(runtime, method, node_name="")
        assert (refused.value.code, refused.value.message) == (
            "INTERNAL",
            '"node_name is required"',
        )


async def test_1_2_5_drains_without_operations(clock: FakeClock) -> None:
    runtime = InMemoryRuntime(release="1.2.5", auto_run=False, clock=clock, nodes=2)
    job_id = await submit(runtime, service())
    node = sorted(nodes_of(runtime, job_id))[0]
    result = await call(runtime, "DrainNode", node_name=node)
    assert result["status"] == "complete" and "operation_id" not in result
    assert result["actions"][0]["status"] == "migrated"
    assert not runtime.services.offers(OPERATIONS + "StartOperation")


async def test_the_handshake_needs_the_join_token(runtime: InMemoryRuntime) -> None:
    request = {"token": "", "node_name": "mirror_neuron@10.0.0.9", "node_info_json": "{}"}
    for secret in (None, "join-secret"):
        runtime.services.group("nodes").join_token = secret
        with pytest.raises(CoreRefusal) as refused:
            await call(runtime, "NetworkHandshake", **{**request, "token": "guess"})
        assert refused.value.code == "UNAUTHENTICATED"
        assert refused.value.message == "valid MN_NETWORK_JOIN_TOKEN is required"
    info = orjson.dumps({"hostname": "box9"}).decode()
    answer = await call(
        runtime, "NetworkHandshake", **{**request, "token": "join-secret", "node_info_json": info}
    )
    assert answer["node_name"] == MN1 and answer["runtime_mode"] == "full"
    assert answer["redis_url"].startswith("redis://:") and answer["network_only"] is False
    store = orjson.loads(answer["node_info_json"])["coordination_store"]
    assert store == summary_node(runtime, MN1)["coordination_store"]
    joining = await call(runtime, "GetNodeDrainStatus", node_name="mirror_neuron@10.0.0.9")
    assert joining["status"] == "joining"
    assert joining["node_state"]["hostname"] == "box9"
    assert joining["node_state"]["operator_disconnect"] is False


async def test_add_node_connects_members_and_refuses_others(runtime: InMemoryRuntime) -> None:
    added = await runtime.services.call(CLUSTER + "AddNode", {"node_name": MN2, "token": "t"})
    assert added == {"node_name": MN2, "status": "connected", "version": 1}
    for name, message in (
        ("elsewhere@10.0.0.7", "failed to connect to elsewhere@10.0.0.7"),
        ("no-host", 'invalid node name "no-host": expected name@host'),
    ):
        with pytest.raises(CoreRefusal) as refused:
            await runtime.services.call(CLUSTER + "AddNode", {"node_name": name, "token": "t"})
        assert (refused.value.code, refused.value.message) == ("INTERNAL", message)


async def test_a_removed_node_is_disconnected_until_added_again(runtime: InMemoryRuntime) -> None:
    assert await runtime.remove_node(MN3) == "removed"
    node = summary_node(runtime, MN3)
    assert (node["status"], node["scheduling_eligible"]) == ("disconnected", False)
    for _ in range(3):
        assert MN3 not in nodes_of(runtime, await submit(runtime, pipeline_manifest()))
    await runtime.services.call(CLUSTER + "AddNode", {"node_name": MN3, "token": "t"})
    state = await call(runtime, "GetNodeDrainStatus", node_name=MN3)
    assert state["status"] == "healthy" and state["node_state"]["operator_disconnect"] is False
