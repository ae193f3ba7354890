"""The in-memory runtime as a cluster of several core nodes: placement, which node answers,
node deaths and the leader's sweep, the state store going away, and long host commands."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from mn_api.adapters.memory.model import ORPHAN_FAILURE, STORE_DOWN_REFUSAL
from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.domain.errors import CoordinatorGoneError, JobNotFoundError, ManifestInvalidError
from mn_api.domain.events import EventRecord
from tests.support import FakeClock, pipeline_manifest, waiting_manifest

MN1, MN2, MN3 = "mn1@127.0.0.1", "mn2@127.0.0.1", "mn3@127.0.0.1"
HOST_LOCAL = "MirrorNeuron.Runner.HostLocal"


def waiting(recovery: str | None = None, graph_id: str = "wait") -> dict[str, Any]:
    return waiting_manifest(graph_id, recovery)


def long_command(run_ms: int) -> dict[str, Any]:
    """One host-local executor whose command runs `run_ms` and completes the job."""
    config = {
        "runner_module": HOST_LOCAL,
        "command": ["sh", "-c", "sleep 15; echo done"],
        "complete_job": True,
        "simulate": {"run_ms": run_ms, "stdout": "done\n"},
    }
    return {
        "manifest_version": "1",
        "graph_id": "exec",
        "entrypoints": ["ex"],
        "nodes": [{"node_id": "ex", "agent_type": "executor", "config": config}],
        "edges": [],
    }


@pytest.fixture
def cluster(clock: FakeClock) -> InMemoryRuntime:
    return InMemoryRuntime(
        release="d26bef71",
        nodes=3,
        auto_run=False,
        clock=clock,
        heartbeat_lapse_seconds=1.0,
        sweep_guard_seconds=0.0,  # every orphan is swept, however recent
    )


async def submit(runtime: InMemoryRuntime, manifest: dict[str, Any]) -> str:
    return (await runtime.submit_job(orjson.dumps(manifest).decode(), {})).job_id


async def events(runtime: InMemoryRuntime, job_id: str) -> list[dict[str, Any]]:
    return [
        r.value
        async for r in runtime.stream_events(job_id, follow=False)
        if isinstance(r, EventRecord)
    ]


async def details(runtime: InMemoryRuntime, job_id: str) -> dict[str, Any]:
    return (await runtime.get_job(job_id)).value


async def scheduled_on(runtime: InMemoryRuntime, job_id: str) -> str:
    return next(e["node"] for e in await events(runtime, job_id) if e["type"] == "job_scheduled")


def agent_nodes(document: dict[str, Any]) -> dict[str, str]:
    return {a["agent_id"]: a["assigned_node"] for a in document["agents"]}


def summary_nodes(runtime: InMemoryRuntime, viewer: str | None = None) -> list[tuple[str, bool]]:
    return [(n["name"], n["self?"]) for n in runtime.system_summary_as(viewer).value["nodes"]]


async def test_a_lone_core_keeps_its_own_name(clock: FakeClock) -> None:
    for release, name in (("d26bef71", "nonode@nohost"), ("1.2.31", MN1)):
        runtime = InMemoryRuntime(release=release, auto_run=False, clock=clock)
        job_id = await submit(runtime, pipeline_manifest())
        runtime.run_until_idle()
        assert await scheduled_on(runtime, job_id) == name
        document = await details(runtime, job_id)
        assert set(agent_nodes(document).values()) == {name}
        assert document["summary"]["nodes"] == [name]
        summary = (await runtime.system_summary()).value
        assert [(n["name"], n["connected_nodes"], n["self?"]) for n in summary["nodes"]] == [
            (name, [name], True)
        ]
        assert runtime.leader == name


async def test_coordinators_and_agents_are_spread_over_the_members(
    cluster: InMemoryRuntime,
) -> None:
    jobs = [await submit(cluster, waiting()) for _ in range(3)]
    cluster.run_until_idle()
    assert [await scheduled_on(cluster, job_id) for job_id in jobs] == [MN1, MN2, MN3]
    placed = [agent_nodes(await details(cluster, job_id)) for job_id in jobs]
    # Agents take the members in turn, in the manifest's order (router, then aggregator).
    assert placed == [
        {"aggregator": MN2, "router": MN1},
        {"aggregator": MN1, "router": MN3},
        {"aggregator": MN3, "router": MN2},
    ]
    for job_id, agents in zip(jobs, placed, strict=True):
        summary = (await details(cluster, job_id))["summary"]
        assert summary["nodes"] == sorted(set(agents.values()))
    # Agents are listed by node, then by id.
    first = (await details(cluster, jobs[1]))["agents"]
    assert [(a["assigned_node"], a["agent_id"]) for a in first] == [
        (MN1, "aggregator"),
        (MN3, "router"),
    ]
    assert cluster.leader == MN1


async def test_the_summary_describes_every_member_from_the_answering_node(
    cluster: InMemoryRuntime,
) -> None:
    listed = cluster.system_summary_as(MN2).value["nodes"]
    # The answering node works out the others' connections from its own: it never lists
    # itself among them.
    assert [(n["name"], n["scheduler_hint"], n["connected_nodes"]) for n in listed] == [
        (MN2, "cluster_member", [MN2, MN1, MN3]),
        (MN1, "remote_member", [MN1, MN3]),
        (MN3, "remote_member", [MN3, MN1]),
    ]
    for node in listed:
        assert node["executor_pools"]["default"]["capacity"] == 4
        assert node["hardware"]["cpu"]["logical_processors"] == 8
        assert node["hardware"]["gpu"] == "Not available"


async def test_each_node_answers_the_summary_as_itself(cluster: InMemoryRuntime) -> None:
    assert summary_nodes(cluster) == [(MN1, True), (MN2, False), (MN3, False)]
    assert summary_nodes(cluster, MN2) == [(MN2, True), (MN1, False), (MN3, False)]
    assert summary_nodes(cluster, MN3) == [(MN3, True), (MN1, False), (MN2, False)]
    cluster.kill_node(MN1)
    # The caller is connected to the first live node.
    assert summary_nodes(cluster) == [(MN2, True), (MN3, False)]
    with pytest.raises(ValueError, match="not a live member"):
        cluster.system_summary_as(MN1)


async def test_killing_a_member_orphans_the_jobs_it_coordinated(
    cluster: InMemoryRuntime,
) -> None:
    first, second, third = [await submit(cluster, waiting()) for _ in range(3)]
    cluster.run_until_idle()
    history = await events(cluster, second)

    cluster.kill_node(MN2)

    assert cluster.live_nodes == [MN1, MN3]
    assert cluster.lost_nodes == [MN2]
    assert cluster.leader == MN1
    assert summary_nodes(cluster) == [(MN1, True), (MN3, False)]
    orphan = await details(cluster, second)
    assert orphan["job"]["status"] == "running"
    assert orphan["summary"]["live?"] is True
    assert all(a["live?"] for a in orphan["agents"])
    assert await events(cluster, second) == history  # nothing is said of it
    # Every agent that ran on the dead node now runs on a survivor.
    for job_id in (first, second, third):
        document = await details(cluster, job_id)
        assert MN2 not in agent_nodes(document).values()
        assert MN2 not in document["summary"]["nodes"]
    for control in (cluster.pause_job, cluster.resume_job):
        with pytest.raises(CoordinatorGoneError):
            await control(second)
    # The jobs other nodes coordinate keep their coordinators.
    for job_id in (first, third):
        assert (await cluster.pause_job(job_id)).status == "paused"
        assert (await cluster.resume_job(job_id)).status == "resumed"

    assert (await cluster.cancel_job(second)).status == "force cancelled"
    ended = await details(cluster, second)
    assert ended["job"]["status"] == "cancelled"
    assert ended["job"]["result"] == {"reason": "forced cancellation of orphaned job"}
    assert ended["summary"]["live?"] is False
    assert all(a["live?"] for a in ended["agents"])  # its agents keep running
    last = (await events(cluster, second))[-1]
    assert (last["type"], last["reason"]) == ("job_cancelled", "forced cancellation")


async def test_an_orphaned_job_stands_still_until_a_new_leader_fails_it(
    clock: FakeClock,
) -> None:
    runtime = InMemoryRuntime(
        release="1.2.31", nodes=3, auto_run=False, clock=clock, sweep_guard_seconds=0.0
    )
    delayed = pipeline_manifest(worker={"simulate": {"delay_ms": 500}})
    await submit(runtime, delayed)  # coordinated by mn1
    job_id = await submit(runtime, delayed)  # by mn2
    runtime.run_until_idle()
    assert await scheduled_on(runtime, job_id) == MN2

    runtime.kill_node(MN2)
    clock.advance(1)
    runtime.run_until_idle()
    assert (await details(runtime, job_id))["job"]["status"] == "running"
    with pytest.raises(CoordinatorGoneError):
        await runtime.pause_job(job_id)

    runtime.kill_node(MN1)  # the leader: mn3 takes over and sweeps
    assert runtime.leader == MN3
    failed = await events(runtime, job_id)
    assert failed[-1]["type"] == "job_failed"
    assert failed[-1]["reason"] == ORPHAN_FAILURE
    assert (await details(runtime, job_id))["job"]["status"] == "failed"


async def test_a_new_leader_fails_local_restart_jobs_and_recovers_cluster_recover_ones(
    cluster: InMemoryRuntime, clock: FakeClock
) -> None:
    restart_on_1 = await submit(cluster, waiting())  # mn1, the leader
    recover_on_2 = await submit(cluster, waiting("cluster_recover", "waitcr"))  # mn2
    restart_on_3 = await submit(cluster, waiting())  # mn3
    recover_on_1 = await submit(cluster, waiting("cluster_recover", "waitcr"))  # mn1
    cluster.run_until_idle()
    untouched = await events(cluster, recover_on_2)
    assert (await details(cluster, recover_on_1))["job"]["recovery_policy"] == "cluster_recover"

    cluster.kill_node(MN3)  # not the leader: its job is orphaned, and stays so
    assert (await details(cluster, restart_on_3))["job"]["status"] == "running"
    cluster.kill_node(MN1)

    assert cluster.leader == MN2
    for job_id in (restart_on_1, restart_on_3):
        document = await details(cluster, job_id)
        assert document["job"]["status"] == "failed"
        assert (document["job"]["result"], document["job"]["error"]) == (None, ORPHAN_FAILURE)
        assert document["summary"]["live?"] is False
        last = (await events(cluster, job_id))[-1]
        assert (last["type"], last["reason"]) == ("job_failed", ORPHAN_FAILURE)
        assert "agent_id" not in last
    before = await events(cluster, recover_on_2)
    recovery = await events(cluster, recover_on_1)
    # The new coordinator is named nowhere: the event says only that recovery started.
    assert set(recovery[-1]) == {"job_id", "timestamp", "type"}
    assert recovery[-1]["type"] == "job_recovery_started"
    assert [e["type"] for e in recovery].count("job_scheduled") == 1
    recovered = await details(cluster, recover_on_1)
    assert recovered["job"]["status"] == "running"
    assert recovered["summary"]["live?"] is True
    assert set(agent_nodes(recovered).values()) == {MN2}
    assert (await cluster.pause_job(recover_on_1)).status == "paused"
    # A job whose coordinator survived is left as it was.
    assert before == untouched


async def test_a_recovered_job_that_was_pending_is_set_up_again(
    cluster: InMemoryRuntime,
) -> None:
    job_id = await submit(cluster, waiting("cluster_recover", "waitcr"))
    cluster.step()  # validated
    cluster.step()  # scheduled on mn1, still pending
    assert (await details(cluster, job_id))["job"]["status"] == "pending"

    cluster.kill_node(MN1)
    cluster.run_until_idle()

    kinds = [e["type"] for e in await events(cluster, job_id)]
    assert kinds[3:8] == [
        "job_recovery_started",
        "job_pending",
        "job_validated",
        "job_scheduled",
        "job_running",
    ]
    scheduled = [e["node"] for e in await events(cluster, job_id) if "node" in e]
    assert scheduled[0] == MN1
    assert scheduled[1] in (MN2, MN3)
    assert (await details(cluster, job_id))["job"]["status"] == "running"


async def test_a_new_leader_leaves_orphans_with_a_recent_record_alone(clock: FakeClock) -> None:
    cluster = InMemoryRuntime(
        release="d26bef71", nodes=3, auto_run=False, clock=clock, sweep_guard_seconds=15.0
    )
    settled = await submit(cluster, waiting())  # mn1
    cluster.run_until_idle()
    clock.advance(16)
    for _ in range(2):  # mn2 and mn3
        await submit(cluster, waiting())
    recent = await submit(cluster, waiting())  # mn1 again
    cluster.run_until_idle()
    assert await scheduled_on(cluster, recent) == MN1

    cluster.kill_node(MN1)

    assert (await details(cluster, settled))["job"]["status"] == "failed"
    # Too recent to be judged, and the sweep runs only as a node becomes leader.
    assert (await details(cluster, recent))["job"]["status"] == "running"
    with pytest.raises(CoordinatorGoneError):
        await cluster.pause_job(recent)


async def test_after_a_long_store_outage_the_leader_sweeps_again(
    cluster: InMemoryRuntime, clock: FakeClock
) -> None:
    await submit(cluster, waiting())
    orphan = await submit(cluster, waiting())  # mn2
    cluster.run_until_idle()
    cluster.kill_node(MN2)

    cluster.state_store_down()
    clock.advance(2)  # shorter than the leader's lease: nothing changes
    cluster.state_store_up()
    assert (await details(cluster, orphan))["job"]["status"] == "running"

    cluster.state_store_down()
    clock.advance(11)
    cluster.state_store_up()
    assert (await details(cluster, orphan))["job"]["status"] == "failed"
    assert cluster.leader == MN1


async def test_after_a_long_store_outage_every_job_that_lost_its_lease_is_swept(
    clock: FakeClock,
) -> None:
    """As measured on a real cluster: a job whose coordinator is alive lost its lease
    meanwhile, and the leader fails it once the store is back, unless it is too young to be
    judged (it then runs on)."""
    cluster = InMemoryRuntime(release="d26bef71", nodes=3, auto_run=False, clock=clock)
    old = await submit(cluster, waiting())
    recovering = await submit(cluster, waiting(recovery="cluster_recover"))
    cluster.run_until_idle()
    clock.advance(20)
    young = await submit(cluster, waiting())
    cluster.run_until_idle()
    cluster.state_store_down()
    clock.advance(11)
    cluster.state_store_up()
    cluster.run_until_idle()
    assert (await details(cluster, old))["job"]["status"] == "failed"
    assert (await events(cluster, recovering))[-1]["type"] == "job_recovery_started"
    assert (await details(cluster, young))["job"]["status"] == "running"
    assert (await cluster.pause_job(young)).status == "paused"  # its coordinator runs it


async def test_a_state_store_down_empties_every_answer_and_loses_nothing(
    cluster: InMemoryRuntime,
) -> None:
    job_id = await submit(cluster, waiting())
    pending = await submit(cluster, waiting())
    cluster.step()
    history = await events(cluster, job_id)
    listed = (await cluster.list_jobs(100, True)).value

    cluster.state_store_down()

    with pytest.raises(JobNotFoundError):
        await cluster.get_job(job_id)
    assert (await cluster.list_jobs(100, True)).value == {"data": []}
    assert (await cluster.system_summary()).value == {}
    assert await events(cluster, job_id) == []
    assert await events(cluster, "ghost-1-000000000000") == []
    with pytest.raises(ManifestInvalidError) as refused:
        await submit(cluster, waiting())
    assert refused.value.errors == [STORE_DOWN_REFUSAL]
    with pytest.raises(ManifestInvalidError) as invalid:
        await submit(cluster, {"graph_id": "g"})  # judged before it is written
    assert refused.value.errors != invalid.value.errors
    assert not cluster.step()  # nothing moves without the store

    cluster.state_store_up()

    assert await events(cluster, job_id) == history
    assert (await cluster.list_jobs(100, True)).value == listed
    assert len((await cluster.system_summary()).value["nodes"]) == 3
    cluster.run_until_idle()
    assert (await details(cluster, pending))["job"]["status"] == "running"
    await submit(cluster, waiting())


async def test_control_calls_reach_the_coordinator_while_the_store_is_down(
    cluster: InMemoryRuntime,
) -> None:
    job_id = await submit(cluster, waiting())
    cluster.run_until_idle()
    before = await events(cluster, job_id)
    cluster.state_store_down()
    assert (await cluster.pause_job(job_id)).status == "paused"
    assert (await cluster.resume_job(job_id)).status == "resumed"
    with pytest.raises(JobNotFoundError):
        await cluster.pause_job("ghost-1-000000000000")
    cluster.state_store_up()
    # What happened meanwhile could not be written.
    assert await events(cluster, job_id) == before
    assert (await details(cluster, job_id))["job"]["status"] == "running"


async def test_a_long_host_command_holds_its_lease_and_its_heartbeat_lapses(
    cluster: InMemoryRuntime, clock: FakeClock
) -> None:
    job_id = await submit(cluster, long_command(3_000))
    cluster.run_until_idle()

    running = await details(cluster, job_id)
    (agent,) = running["agents"]
    assert running["job"]["status"] == "running"
    assert (agent["status"], agent["running?"], agent["live?"]) == ("running", True, True)
    assert agent["lease"] == {"lease_id": None, "pool": None, "slots": None}
    assert running["summary"]["live?"] is True
    assert running["summary"]["active_executors"] == 1
    kinds = [e["type"] for e in await events(cluster, job_id)]
    assert "executor_lease_acquired" in kinds
    assert "executor_lease_released" not in kinds
    pools = {
        n["name"]: n["executor_pools"]["default"]["in_use"]
        for n in (await cluster.system_summary()).value["nodes"]
    }
    assert pools[agent["assigned_node"]] == 1
    assert sum(pools.values()) == 1

    clock.advance(1.5)  # past the heartbeat lapse, before the command ends
    cluster.run_until_idle()
    lapsed = await details(cluster, job_id)
    assert lapsed["job"]["status"] == "running"
    assert lapsed["agents"][0]["live?"] is False
    assert lapsed["summary"]["live?"] is False
    assert lapsed["agents"][0]["last_heartbeat_at"] == agent["last_heartbeat_at"]

    clock.advance(2)
    cluster.run_until_idle()
    done = await details(cluster, job_id)
    (agent,) = done["agents"]
    assert done["job"]["status"] == "completed"
    assert (agent["status"], agent["running?"], agent["live?"]) == ("completed", False, True)
    assert agent["lease"]["lease_id"] is not None
    assert done["summary"]["active_executors"] == 0
    kinds = [e["type"] for e in await events(cluster, job_id)]
    assert kinds[-3:] == ["executor_lease_released", "sandbox_job_completed", "job_completed"]
    output = done["job"]["result"]["output"]
    assert output["sandbox"]["node_name"] == agent["assigned_node"]


async def test_a_restarted_node_is_a_member_again(cluster: InMemoryRuntime) -> None:
    cluster.kill_node(MN3)
    with pytest.raises(ValueError, match="not a live member"):
        cluster.kill_node(MN3)
    with pytest.raises(ValueError, match="not a lost node"):
        cluster.restart_node(MN1)

    cluster.restart_node(MN3)

    assert cluster.live_nodes == [MN1, MN2, MN3]
    assert cluster.lost_nodes == []
    assert cluster.leader == MN1
    assert summary_nodes(cluster, MN3) == [(MN3, True), (MN1, False), (MN2, False)]
    jobs = [await submit(cluster, waiting()) for _ in range(3)]
    cluster.run_until_idle()
    assert {await scheduled_on(cluster, job_id) for job_id in jobs} == {MN1, MN2, MN3}


async def test_the_last_node_cannot_be_killed(cluster: InMemoryRuntime) -> None:
    cluster.kill_node(MN1)
    cluster.kill_node(MN2)
    with pytest.raises(ValueError, match="last live node"):
        cluster.kill_node(MN3)
    assert cluster.leader == MN3


def test_a_release_that_runs_alone_has_no_cluster() -> None:
    with pytest.raises(ValueError, match="single node"):
        InMemoryRuntime(release="1.1", nodes=3, auto_run=False)
