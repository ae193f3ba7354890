"""mn-fake-core as a cluster of three nodes in its own process: every port serves the whole
cluster as its own node, and the fault service kills and restarts nodes and takes the state
store away, as a real cluster's nodes and Redis would go."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import orjson
import pytest

from mn_api.adapters.grpc.protos import (
    cluster_pb2,
    cluster_pb2_grpc,
    job_pb2,
    job_pb2_grpc,
    observability_pb2,
    observability_pb2_grpc,
)
from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.entrypoints.fake_core import FakeCore, apply_fault
from tests.support import free_port, waiting_manifest
from tests.support.processes import terminate

pytestmark = pytest.mark.slow

MN1, MN2, MN3 = "mn1@127.0.0.1", "mn2@127.0.0.1", "mn3@127.0.0.1"
FAKE_CORE = str(Path(sys.executable).with_name("mn-fake-core"))
# Each call connects afresh: a connection shared between channels would still be waiting
# out its reconnection backoff when a killed node comes back.
FRESH = (("grpc.use_local_subchannel_pool", 1),)


def waiting(recovery: str | None = None) -> str:
    return orjson.dumps(waiting_manifest(recovery=recovery)).decode()


@dataclass
class Cluster:
    process: subprocess.Popen[str]
    ready_line: str
    ports: dict[str, int]

    def target(self, node: str) -> str:
        return f"127.0.0.1:{self.ports[node]}"


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    ports = [free_port() for _ in range(3)]
    process = subprocess.Popen(
        [
            FAKE_CORE,
            "--release",
            "d26bef71",
            "--nodes",
            "3",
            "--ports",
            ",".join(map(str, ports)),
            "--step-ms",
            "2",
            "--sweep-guard-seconds",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "listening" in line, line
        yield Cluster(process, line, dict(zip((MN1, MN2, MN3), ports, strict=True)))
    finally:
        assert terminate(process) == 0


async def call(target: str, rpc: str, request: Any) -> Any:
    async with grpc.aio.insecure_channel(target, options=FRESH) as channel:
        jobs = job_pb2_grpc.JobServiceStub(channel)
        cluster = cluster_pb2_grpc.ClusterServiceStub(channel)
        stub = cluster if rpc == "GetSystemSummary" else jobs
        return await getattr(stub, rpc)(request, timeout=5)


async def summary(target: str) -> dict[str, Any]:
    response = await call(target, "GetSystemSummary", cluster_pb2.GetSystemSummaryRequest())
    return orjson.loads(response.summary_json)


async def get_job(target: str, job_id: str) -> dict[str, Any]:
    response = await call(target, "GetJob", job_pb2.GetJobRequest(job_id=job_id))
    return orjson.loads(response.job_json)


async def submit(target: str, manifest_json: str) -> str:
    request = job_pb2.SubmitJobRequest(manifest_json=manifest_json)
    return (await call(target, "SubmitJob", request)).job_id


async def history(target: str, job_id: str) -> list[dict[str, Any]]:
    async with grpc.aio.insecure_channel(target, options=FRESH) as channel:
        stub = observability_pb2_grpc.ObservabilityServiceStub(channel)
        request = observability_pb2.StreamEventsRequest(job_id=job_id)
        return [orjson.loads(e.event_json) async for e in stub.StreamEvents(request, timeout=5)]


async def running(target: str, *job_ids: str) -> None:
    async with asyncio.timeout(5):
        for job_id in job_ids:
            status = None
            while status != "running":
                await asyncio.sleep(0.01)
                status = (await get_job(target, job_id)).get("job", {}).get("status")


async def refusal(work: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await work
    return raised.value.code(), raised.value.details() or ""


def selves(document: dict[str, Any]) -> list[tuple[str, bool]]:
    return [(n["name"], n["self?"]) for n in document["nodes"]]


async def test_every_port_answers_for_the_whole_cluster_as_its_own_node(
    cluster: Cluster,
) -> None:
    for node, port in cluster.ports.items():
        assert f"127.0.0.1:{port} ({node})" in cluster.ready_line
    assert selves(await summary(cluster.target(MN1))) == [(MN1, True), (MN2, False), (MN3, False)]
    assert selves(await summary(cluster.target(MN2))) == [(MN2, True), (MN1, False), (MN3, False)]
    assert selves(await summary(cluster.target(MN3))) == [(MN3, True), (MN1, False), (MN2, False)]

    jobs = [await submit(cluster.target(MN1), waiting()) for _ in range(3)]
    await running(cluster.target(MN2), *jobs)
    coordinators = []
    for job_id in jobs:
        events = await history(cluster.target(MN3), job_id)
        coordinators += [e["node"] for e in events if e["type"] == "job_scheduled"]
        document = await get_job(cluster.target(MN2), job_id)
        assigned = sorted({a["assigned_node"] for a in document["agents"]})
        assert document["summary"]["nodes"] == assigned
    assert coordinators == [MN1, MN2, MN3]

    state = await apply_fault(cluster.target(MN2), "status")
    assert state == {
        "nodes": [MN1, MN2, MN3],
        "lost": [],
        "leader": MN1,
        "state_store": "up",
        "ports": cluster.ports,
    }


async def test_a_killed_node_refuses_connections_and_its_jobs_are_orphaned(
    cluster: Cluster,
) -> None:
    jobs = [await submit(cluster.target(MN1), waiting()) for _ in range(3)]
    await running(cluster.target(MN1), *jobs)
    orphan = jobs[1]  # coordinated by mn2

    # Asked on the node that dies: the answer still comes back.
    state = await apply_fault(cluster.target(MN2), "kill_node", node=MN2)
    assert (state["nodes"], state["lost"], state["leader"]) == ([MN1, MN3], [MN2], MN1)

    async with asyncio.timeout(5):
        while True:
            try:
                await summary(cluster.target(MN2))
            except grpc.aio.AioRpcError as refused:
                assert refused.code() is grpc.StatusCode.UNAVAILABLE
                break
            await asyncio.sleep(0.02)
    # Not an answer of a node shutting down: nothing listens on its port any more.
    code, text = await refusal(get_job(cluster.target(MN2), orphan))
    assert code is grpc.StatusCode.UNAVAILABLE
    assert "Connection refused" in text
    assert selves(await summary(cluster.target(MN1))) == [(MN1, True), (MN3, False)]
    assert selves(await summary(cluster.target(MN3))) == [(MN3, True), (MN1, False)]

    document = await get_job(cluster.target(MN3), orphan)
    assert (document["job"]["status"], document["summary"]["live?"]) == ("running", True)
    assert MN2 not in {a["assigned_node"] for a in document["agents"]}
    for rpc in ("PauseJob", "ResumeJob"):
        request = getattr(job_pb2, f"{rpc}Request")(job_id=orphan)
        assert await refusal(call(cluster.target(MN1), rpc, request)) == (
            grpc.StatusCode.INTERNAL,
            f"job {orphan} is not running in the connected cluster",
        )
    pause = job_pb2.PauseJobRequest(job_id=jobs[2])
    assert (await call(cluster.target(MN1), "PauseJob", pause)).status == "paused"
    cancel = job_pb2.CancelJobRequest(job_id=orphan)
    assert (await call(cluster.target(MN3), "CancelJob", cancel)).status == "force cancelled"

    state = await apply_fault(cluster.target(MN1), "restart_node", node=MN2)
    assert (state["nodes"], state["lost"]) == ([MN1, MN3, MN2], [])
    assert selves(await summary(cluster.target(MN2))) == [(MN2, True), (MN1, False), (MN3, False)]
    assert (await get_job(cluster.target(MN2), orphan))["job"]["status"] == "cancelled"


async def test_the_leaders_death_fails_or_recovers_the_jobs_it_coordinated(
    cluster: Cluster,
) -> None:
    local = await submit(cluster.target(MN2), waiting())  # coordinated by mn1, the leader
    recovered = await submit(cluster.target(MN2), waiting("cluster_recover"))  # by mn2
    elsewhere = await submit(cluster.target(MN2), waiting())  # by mn3
    again = await submit(cluster.target(MN2), waiting("cluster_recover"))  # by mn1
    await running(cluster.target(MN2), local, recovered, elsewhere, again)

    state = await apply_fault(cluster.target(MN3), "kill_node", node=MN1)

    assert state["leader"] == MN2
    failed = await history(cluster.target(MN2), local)
    assert failed[-1]["type"] == "job_failed"
    assert "cluster recovery" in failed[-1]["reason"]
    restarted = await history(cluster.target(MN3), again)
    assert [e["type"] for e in restarted][-1] == "job_recovery_started"
    for job_id in (recovered, elsewhere, again):
        assert (await get_job(cluster.target(MN3), job_id))["job"]["status"] == "running"
    pause = job_pb2.PauseJobRequest(job_id=again)
    assert (await call(cluster.target(MN2), "PauseJob", pause)).status == "paused"


async def test_without_its_state_store_the_core_answers_empty_until_it_is_back(
    cluster: Cluster,
) -> None:
    job_id = await submit(cluster.target(MN1), waiting())
    await running(cluster.target(MN1), job_id)
    before = await history(cluster.target(MN1), job_id)

    state = await apply_fault(cluster.target(MN1), "state_store_down")
    assert state["state_store"] == "down"

    for node in (MN1, MN2, MN3):
        target = cluster.target(node)
        assert await get_job(target, job_id) == {}
        listed = await call(target, "ListJobs", job_pb2.ListJobsRequest(include_terminal=True))
        assert orjson.loads(listed.jobs_json) == {"data": []}
        assert await summary(target) == {}
        assert await history(target, job_id) == []
        assert await refusal(submit(target, waiting())) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            '"failed to persist initial job: %Redix.ConnectionError{reason: :closed}"',
        )

    await apply_fault(cluster.target(MN2), "state_store_up")
    assert await history(cluster.target(MN3), job_id) == before
    assert (await get_job(cluster.target(MN2), job_id))["job"]["status"] == "running"
    assert len((await summary(cluster.target(MN3)))["nodes"]) == 3


async def test_faults_the_cluster_cannot_take_are_refused(cluster: Cluster) -> None:
    target = cluster.target(MN1)
    code, text = await refusal(apply_fault(target, "kill_node", node="mn9@127.0.0.1"))
    assert (code, text) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "mn9@127.0.0.1 is not a live member of the cluster",
    )
    code, _ = await refusal(apply_fault(target, "restart_node", node=MN2))
    assert code is grpc.StatusCode.FAILED_PRECONDITION
    code, text = await refusal(apply_fault(target, "explode"))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert "explode" in text
    code, _ = await refusal(apply_fault(target, "kill_node"))
    assert code is grpc.StatusCode.INVALID_ARGUMENT


def test_a_release_that_runs_alone_refuses_several_nodes() -> None:
    finished = subprocess.run(
        [FAKE_CORE, "--release", "1.1", "--nodes", "2", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert finished.returncode == 2
    assert "single node" in finished.stderr


def test_ports_must_name_one_port_per_node() -> None:
    finished = subprocess.run(
        [FAKE_CORE, "--nodes", "3", "--ports", "0,0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert finished.returncode == 2
    assert "2 ports for 3 nodes" in finished.stderr


def test_the_variable_sets_the_nodes_and_port_the_first_of_them() -> None:
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MN_")}
    environment["MN_FAKE_CORE_NODES"] = "2"
    process = subprocess.Popen(
        [FAKE_CORE, "--release", "1.2.5", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
    finally:
        assert terminate(process) == 0
    assert "2 nodes" in line
    assert f"127.0.0.1:{port} ({MN1})" in line
    assert f"({MN2})" in line
    assert process.stderr is not None
    assert "MN_FAKE_CORE_NODES" not in process.stderr.read()  # a variable it reads


async def test_a_newer_release_refuses_control_of_an_orphan_by_its_own_codes() -> None:
    """In process, on 1.2.31: the refusal's text is the cluster's, its code chosen from it."""
    runtime = InMemoryRuntime(release="1.2.31", nodes=2, step_seconds=0.002)
    core = FakeCore(runtime, token="t")
    await core.start(ports=[0, 0])
    try:
        first = f"127.0.0.1:{core.ports[MN1]}"
        daemon = orjson.dumps({**orjson.loads(waiting()), "daemon": True}).decode()
        job_id = await submit(first, daemon)  # coordinated by mn1
        orphan = await submit(first, daemon)  # by mn2
        await running(first, job_id, orphan)
        await apply_fault(first, "kill_node", node=MN2)

        async with grpc.aio.insecure_channel(first) as channel:
            jobs = job_pb2_grpc.JobServiceStub(channel)
            code, text = await refusal(
                jobs.PauseJob(
                    job_pb2.PauseJobRequest(job_id=orphan), metadata=(("authorization", "t"),)
                )
            )
        assert (code, text) == (
            grpc.StatusCode.NOT_FOUND,
            f"job {orphan} is not running in the connected cluster",
        )
        cancelled = await call(first, "CancelJob", job_pb2.CancelJobRequest(job_id=orphan))
        assert cancelled.status == "cancelled"  # 1.2.31 has no force-cancel wording
        document = await summary(first)
        assert document["metrics"]["nodes"]["total"] == 1
        assert selves(document) == [(MN1, True)]
    finally:
        await core.stop(grace=None)
