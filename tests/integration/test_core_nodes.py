"""The gateway over gRPC in front of a simulated cluster of three core nodes (in-process):
the node it talks to dies, nodes leave and come back, the state store goes away.

The same scenarios against a real cluster of the core, and the simulation compared with it,
are in tests/cluster (make test-cluster)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from mn_api.adapters.grpc.runtime import GrpcRuntime
from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.config import Settings
from mn_api.entrypoints.fake_core import FakeCore
from tests.integration.test_gateway_over_grpc import gateway
from tests.support import eventually, free_port, waiting_manifest

API = "/api/v1"
MN1, MN2, MN3 = (f"mn{k}@127.0.0.1" for k in (1, 2, 3))


@pytest.fixture
async def cluster() -> AsyncIterator[FakeCore]:
    runtime = InMemoryRuntime(release="d26bef71", nodes=3, step_seconds=0.005)
    core = FakeCore(runtime)
    await core.start("127.0.0.1", 0)
    try:
        yield core
    finally:
        await core.stop(grace=None)


def targets(core: FakeCore, *, dead_first: bool = False) -> str:
    listed = [f"127.0.0.1:{core.ports[name]}" for name in (MN1, MN2, MN3)]
    if dead_first:
        listed.insert(0, f"127.0.0.1:{free_port()}")  # nothing listens there
    return ",".join(listed)


@pytest.fixture
def settings_for(settings_factory: Callable[..., Settings]) -> Callable[[str], Settings]:
    def build(target: str) -> Settings:
        return settings_factory(
            runtime="grpc", grpc_target_raw=target, grpc_timeout_seconds=2, ready_timeout_seconds=1
        )

    return build


def waiting(graph_id: str) -> dict:
    return waiting_manifest(graph_id)


async def test_a_node_that_refuses_connections_is_passed_over(
    cluster: FakeCore, settings_for: Callable[[str], Settings], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "mn_api.grpc")
    async with gateway(settings_for(targets(cluster, dead_first=True))) as client:
        submitted = await client.post(f"{API}/jobs", json={"manifest": waiting("first")})
        assert submitted.status_code == 201, submitted.text
        assert (await client.get(f"{API}/jobs")).status_code == 200
        summary = (await client.get(f"{API}/system/summary")).json()
        assert summary["nodes"][0]["name"] == MN1 and summary["nodes"][0]["self"] is True
    assert any("calls go to" in r.getMessage() for r in caplog.records)


async def test_the_node_in_use_dies_and_reads_and_writes_go_on(
    cluster: FakeCore, settings_for: Callable[[str], Settings]
) -> None:
    async with gateway(settings_for(targets(cluster))) as client:
        job_id = (await client.post(f"{API}/jobs", json={"manifest": waiting("on")})).json()[
            "job_id"
        ]
        assert (await client.get(f"{API}/jobs/{job_id}")).status_code == 200
        await cluster.kill_node(MN1)  # the node the gateway talks to
        await asyncio.sleep(0.2)
        for _ in range(20):
            assert (await client.get(f"{API}/jobs/{job_id}")).status_code == 200
            assert (await client.get(f"{API}/jobs")).status_code == 200
        submitted = await client.post(f"{API}/jobs", json={"manifest": waiting("after")})
        assert submitted.status_code == 201, submitted.text
        # The summary now comes from the next node, and the dead one is listed lost.
        nodes = (await client.get(f"{API}/nodes")).json()["nodes"]
        assert [(n["name"], n.get("status")) for n in nodes] == [
            (MN2, None),
            (MN3, None),
            (MN1, "lost"),
        ]
        assert nodes[0]["self"] is True
        assert (await client.get(f"{API}/ready")).status_code == 200
        status = (await client.get(f"{API}/runtime/status")).json()
        assert status["status"] == "degraded" and status["executors"]["lost_capacity"] == 4
        await cluster.restart_node(MN1)
        back = await eventually(lambda: _status(client, "ok"), within=10, every=0.2)
        assert MN1 in back["nodes"]["names"]


async def _status(client: httpx.AsyncClient, wanted: str) -> dict | None:
    status = (await client.get(f"{API}/runtime/status")).json()
    return status if status["status"] == wanted else None


async def test_jobs_of_a_dead_coordinator_are_orphaned_the_others_not(
    cluster: FakeCore, settings_for: Callable[[str], Settings]
) -> None:
    async with gateway(settings_for(targets(cluster))) as client:
        ids = []
        for n in range(3):  # round-robin: one job coordinated by each node
            answer = await client.post(f"{API}/jobs", json={"manifest": waiting(f"o{n}")})
            ids.append(answer.json()["job_id"])

        async def coordinated() -> dict[str, str] | None:
            named = {}
            for job_id in ids:
                job = (await client.get(f"{API}/jobs/{job_id}")).json()["job"]
                if "coordinator_node" in job and job["status"] == "running":
                    named[job["coordinator_node"]] = job_id
            return named if len(named) == 3 else None

        by_node = await eventually(coordinated, within=10)
        await cluster.kill_node(MN3)  # not the leader: nothing sweeps its jobs

        async def orphaned() -> dict | None:
            job = (await client.get(f"{API}/jobs/{by_node[MN3]}")).json()["job"]
            return job if "orphaned" in job else None

        # Membership is read from a summary at most two seconds old.
        orphan = await eventually(orphaned, within=10, every=0.2)
        assert orphan["status"] == "running"
        assert orphan["orphaned"]["reason"] == "coordinator_lost"
        assert orphan["orphaned"]["coordinator_node"] == MN3
        for node in (MN1, MN2):
            assert "orphaned" not in (await client.get(f"{API}/jobs/{by_node[node]}")).json()["job"]
        paused = await client.post(f"{API}/jobs/{by_node[MN3]}/pause")
        assert paused.status_code == 409 and "no coordinator" in paused.json()["detail"]
        progress = (await client.get(f"{API}/jobs/{by_node[MN3]}/workflow-progress")).json()
        assert progress["coordinator_node"] == MN3
        assert all(step["node"] in (MN1, MN2) for step in progress["steps"])


async def test_the_state_store_down_answers_503_never_404_or_empty(
    cluster: FakeCore, settings_for: Callable[[str], Settings]
) -> None:
    async with gateway(settings_for(targets(cluster))) as client:
        job_id = (await client.post(f"{API}/jobs", json={"manifest": waiting("s")})).json()[
            "job_id"
        ]
        cluster.runtime.state_store_down()
        for path in (f"/jobs/{job_id}", "/jobs", "/system/summary", f"/jobs/{job_id}/events"):
            answer = await client.get(f"{API}{path}")
            assert answer.status_code == 503, (path, answer.text)
            assert answer.json()["error"] == "runtime_unavailable"
            assert answer.headers["retry-after"]
        refused = await client.post(f"{API}/jobs", json={"manifest": waiting("s")})
        assert refused.status_code == 503 and "state store" in refused.json()["detail"]
        assert (await client.get(f"{API}/ready")).status_code == 503
        doctor = (await client.get(f"{API}/runtime/doctor")).json()
        assert doctor["status"] == "degraded"
        assert (await client.get(f"{API}/jobs/nope")).status_code == 503
        cluster.runtime.state_store_up()
        assert (await client.get(f"{API}/jobs/{job_id}")).status_code == 200
        assert (await client.get(f"{API}/jobs/nope")).status_code == 404
        assert (await client.get(f"{API}/ready")).status_code == 200
        listed = (await client.get(f"{API}/jobs")).json()["data"]
        assert [job["job_id"] for job in listed] == [job_id]


async def test_a_core_that_resets_calls_is_named_with_the_authority(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What a core's HTTP/2 server does with an authority it refuses: reset the stream."""
    import grpc

    async def reset(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        await context.abort(grpc.StatusCode.INTERNAL, "Received RST_STREAM with error code 1")
        return b""

    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        "mirrorneuron.job.v1.JobService", {"ListJobs": grpc.unary_unary_rpc_method_handler(reset)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    runtime = GrpcRuntime(f"127.0.0.1:{port}", authority="core.internal")
    caplog.set_level(logging.ERROR, "mn_api.grpc")
    try:
        from mn_api.domain.errors import RuntimeFailureError

        for _ in range(2):
            with pytest.raises(RuntimeFailureError) as caught:
                await runtime.list_jobs(5, True)
            assert "authority" in caught.value.detail
    finally:
        await runtime.close()
        await server.stop(None)
    named = [r.getMessage() for r in caplog.records if "RST_STREAM" in r.getMessage()]
    assert len(named) == 1 and "core.internal" in named[0]


def core_calls(exposition: str) -> dict[tuple[str, str], float]:
    """`mn_api_core_calls_total` by (rpc, code), from /metrics."""
    counts = {}
    for line in exposition.splitlines():
        if line.startswith("mn_api_core_calls_total{"):
            labels, value = line.rsplit(" ", 1)
            pairs = dict(
                part.split("=", 1) for part in labels[labels.index("{") + 1 : -1].split(",")
            )
            counts[(pairs["rpc"].strip('"'), pairs["code"].strip('"'))] = float(value)
    return counts


async def test_every_core_call_is_counted_with_its_code_failures_included(
    cluster: FakeCore, settings_for: Callable[[str], Settings]
) -> None:
    async with gateway(settings_for(targets(cluster, dead_first=True))) as client:
        before = core_calls((await client.get("/metrics")).text)
        job_id = (await client.post(f"{API}/jobs", json={"manifest": waiting("counted")})).json()[
            "job_id"
        ]
        assert (await client.get(f"{API}/jobs/{job_id}")).status_code == 200
        assert (await client.get(f"{API}/jobs/nope-{job_id}")).status_code == 404
        assert (await client.get(f"{API}/jobs")).status_code == 200
        assert (await client.get(f"{API}/system/summary")).status_code == 200
        assert (await client.post(f"{API}/jobs/{job_id}/cancel")).status_code == 200
        assert (await client.post(f"{API}/jobs/{job_id}/pause")).status_code == 409
        after = core_calls((await client.get("/metrics")).text)
        seen = (await client.get("/metrics")).text
    grew = {key for key, value in after.items() if value > before.get(key, 0)}
    # The first call went to the address where nothing listens, and moved on.
    assert ("SubmitJob", "UNAVAILABLE") in grew
    for rpc in ("SubmitJob", "GetJob", "ListJobs", "GetSystemSummary", "CancelJob"):
        assert (rpc, "OK") in grew, (rpc, sorted(grew))
    # d26bef71 refuses to pause an ended job with INTERNAL (and answers an unknown job OK).
    assert ("PauseJob", "INTERNAL") in grew
    assert 'mn_api_core_call_duration_seconds_count{rpc="ListJobs"}' in seen
