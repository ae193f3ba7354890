"""The gateway in front of a core cluster of three nodes when things fail: the real core
(../shared/realcore, run by its cluster.sh) and the simulation (`mn-fake-core --nodes 3`)
go through the same scenarios, and what each scenario observed is compared between them.

- failover: the node the gateway talks to is killed (-9) while clients read, submit with
  an Idempotency-Key and follow a job's events;
- orphans: a node that coordinates jobs is killed; its jobs, and only its jobs, are
  reported orphaned; it is listed lost, and a member again once restarted;
- a long host-local executor sends no heartbeat for longer than the core's window, and
  its job is never reported orphaned;
- the core's state store (its Redis) stops for a while: 503 with Retry-After everywhere,
  streams say so and resume with nothing lost or repeated.

Run by `make test-cluster` (a step of CI of its own: a real cluster takes a while).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import eventually, read_sse, waiting_manifest
from tests.support.processes import GatewayProcess
from tests.support.realcluster import RealCluster, SimulatedCluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(420)]

# What a healthy job that waits shows first (the comparison is of types, in order).
FIRST_EVENTS = [
    "job_pending",
    "job_validated",
    "job_scheduled",
    "job_running",
    "agent_message_received",
]
# A host-local executor whose command runs longer than the core's heartbeat window.
LONG_SECONDS = 13


def waiting(graph_id: str) -> dict[str, Any]:
    return waiting_manifest(graph_id)


def long_executor() -> dict[str, Any]:
    return {
        "manifest_version": "1",
        "graph_id": "long-executor",
        "nodes": [
            {
                "node_id": "runner",
                "agent_type": "executor",
                "config": {
                    "runner_module": "MirrorNeuron.Runner.HostLocal",
                    "command": ["sh", "-c", f"sleep {LONG_SECONDS}; echo done"],
                    "complete_job": True,
                    # The simulation's stand-in for the command's time (the core ignores it).
                    "simulate": {"run_ms": LONG_SECONDS * 1000},
                },
            }
        ],
        "edges": [],
        "entrypoints": ["runner"],
    }


# What each scenario saw on each kind of cluster.
OBSERVED: dict[str, dict[str, Any]] = {}


@pytest.fixture(scope="module", params=["real", "simulated"])
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RealCluster | SimulatedCluster]:
    workdir = tmp_path_factory.mktemp(f"cluster-{request.param}")
    if request.param == "real":
        missing = RealCluster.available()
        if missing:
            pytest.skip(missing)
        started: RealCluster | SimulatedCluster = RealCluster(workdir).start()
    else:
        started = SimulatedCluster(workdir).start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
async def api(
    cluster: RealCluster | SimulatedCluster, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway process in front of the whole cluster, and a client of it."""
    gateway = GatewayProcess(
        tmp_path, "grpc", target=cluster.targets, MN_API_SSE_HEARTBEAT_SECONDS="1"
    ).start()
    try:
        async with httpx.AsyncClient(base_url=f"{gateway.base}/api/v1", timeout=30) as client:
            yield client
    finally:
        gateway.stop()


def observe(cluster: RealCluster | SimulatedCluster, scenario: str, **seen: Any) -> None:
    """Keep what the scenario saw; once it ran on both kinds of cluster, the simulation
    must have seen what the real cluster did."""
    kept = OBSERVED.setdefault(scenario, {})
    kept[cluster.kind] = seen
    if {"real", "simulated"} <= set(kept):
        assert kept["simulated"] == kept["real"], f"the simulation drifts in {scenario}"


async def submit(api: httpx.AsyncClient, graph_id: str, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        answer = await api.post("/jobs", json={"manifest": waiting(graph_id)})
        assert answer.status_code == 201, answer.text
        ids.append(answer.json()["job_id"])
    return ids


async def details(api: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    answer = await api.get(f"/jobs/{job_id}")
    assert answer.status_code == 200, answer.text
    return answer.json()


async def coordinators(api: httpx.AsyncClient, ids: list[str]) -> dict[str, str]:
    """Each job's coordinating node, once every job names one."""
    named: dict[str, str] = {}
    deadline = time.monotonic() + 20
    while len(named) < len(ids) and time.monotonic() < deadline:
        for job_id in ids:
            node = (await details(api, job_id))["job"].get("coordinator_node")
            if node:
                named[job_id] = node
        await asyncio.sleep(0.2)
    assert len(named) == len(ids), named
    return named


async def cancel_all(api: httpx.AsyncClient, ids: list[str]) -> None:
    for job_id in ids:
        await api.post(f"/jobs/{job_id}/cancel")


class Follower:
    """One SSE client of a job's events (or its workflow progress), in the background."""

    def __init__(self, api: httpx.AsyncClient, job_id: str, what: str = "events") -> None:
        self.events: list[dict[str, Any]] = []
        path = f"/jobs/{job_id}/events/stream"
        if what == "progress":
            path = f"/jobs/{job_id}/workflow-progress/stream"
        self._task = asyncio.create_task(self._read(api, path))

    async def _read(self, api: httpx.AsyncClient, path: str) -> None:
        async with api.stream("GET", path) as response:
            assert response.status_code == 200
            await read_sse(
                response.aiter_lines(),
                stop=lambda event, _all: event.get("event") == "end",
                on_event=self._keep,
            )

    async def _keep(self, event: dict[str, Any], _events: list[dict[str, Any]]) -> None:
        self.events.append(event)

    async def finished(self, within: float = 30) -> list[dict[str, Any]]:
        async with asyncio.timeout(within):
            await self._task
        return self.events

    def ids(self) -> list[int]:
        return [int(e["id"]) for e in self.events if "id" in e]

    def says(self, runtime: str) -> bool:
        return any(
            e.get("event") == "heartbeat" and f'"runtime":"{runtime}"' in e.get("data", "")
            for e in self.events
        )


async def test_failover_when_the_gateways_node_dies(
    cluster: RealCluster | SimulatedCluster, api: httpx.AsyncClient
) -> None:
    ids = await submit(api, "failover", 4)
    follower = Follower(api, ids[0])
    failures: list[tuple[float, int]] = []
    reading = True

    async def read() -> None:
        while reading:
            for path in (f"/jobs/{ids[1]}", "/jobs?limit=5"):
                moment = time.monotonic()
                try:
                    status = (await api.get(path)).status_code
                except httpx.TransportError:
                    status = 0
                if status != 200:
                    failures.append((moment, status))
            await asyncio.sleep(0.1)

    reader = asyncio.create_task(read())
    await asyncio.sleep(1.5)
    await cluster.kill(1)  # the first address: the node the gateway talks to
    outcomes = []
    for n in range(3):  # submissions with a key, retried once as a careful client does
        key = {"Idempotency-Key": f"failover-{cluster.kind}-{n}"}
        answer = await api.post("/jobs", json={"manifest": waiting("failover-keyed")}, headers=key)
        if answer.status_code != 201:
            answer = await api.post(
                "/jobs", json={"manifest": waiting("failover-keyed")}, headers=key
            )
        outcomes.append(answer.status_code)
    await asyncio.sleep(3)
    reading = False
    await reader
    await api.post(f"/jobs/{ids[0]}/cancel")
    events = await follower.finished()

    # No answer other than 200 for more than 5 s.
    longest = failures[-1][0] - failures[0][0] if failures else 0.0
    assert longest < 5, failures
    assert all(status in (201, 409, 503) for status in outcomes), outcomes
    listed = (await api.get("/jobs?graph_id=failover-keyed&limit=100")).json()["data"]
    assert len(listed) <= 3  # never a second job for one key
    positions = follower.ids()
    assert positions == list(range(len(positions)))  # nothing lost or repeated
    assert events[-1] == {"event": "end", "data": "cancelled"}
    kinds = [json.loads(e["data"])["type"] for e in events if "id" in e]
    observe(
        cluster,
        "failover",
        reads_recovered=longest < 5,
        stream_first=kinds[:5] == FIRST_EVENTS,
        stream_end=events[-1],
        keyed_jobs_at_most_keys=len(listed) <= 3,
    )
    await cancel_all(api, ids)
    await cluster.restart(1)


async def test_jobs_of_a_lost_coordinator_are_orphaned_and_the_node_listed_lost(
    cluster: RealCluster | SimulatedCluster, api: httpx.AsyncClient
) -> None:
    ids = await submit(api, "orphans", 6)
    named = await coordinators(api, ids)
    leader = await cluster.leader()
    # A node that is not the leader (no sweep follows its loss) and coordinates jobs.
    victims = [node for node in sorted(set(named.values())) if node != leader]
    assert victims, (named, leader)
    victim = victims[0]
    k = int(victim.split("@")[0].removeprefix("mn"))
    await cluster.kill(k)
    orphans = [job_id for job_id, node in named.items() if node == victim]
    healthy = [job_id for job_id in ids if job_id not in orphans]

    deadline = time.monotonic() + 30
    reported: dict[str, dict[str, Any]] = {}
    while len(reported) < len(orphans) and time.monotonic() < deadline:
        for job_id in orphans:
            job = (await details(api, job_id))["job"]
            if "orphaned" in job or job["status"] in ("failed", "completed", "cancelled"):
                reported[job_id] = job
        await asyncio.sleep(0.5)
    assert set(reported) == set(orphans), reported
    for job in reported.values():
        if "orphaned" in job:
            assert job["orphaned"]["reason"] == "coordinator_lost"
            assert job["orphaned"]["detail"].startswith(f"node {victim}, which coordinated it")
    for job_id in healthy:
        assert "orphaned" not in (await details(api, job_id))["job"]

    paused = await api.post(f"/jobs/{orphans[0]}/pause")
    cancelled = await api.post(f"/jobs/{orphans[0]}/cancel")
    status = (await api.get("/runtime/status")).json()
    nodes = (await api.get("/nodes")).json()["nodes"]
    lost = [n for n in nodes if n.get("status") == "lost"]
    doctor = (await api.get("/runtime/doctor")).json()
    ready = (await api.get("/ready")).status_code

    await cluster.restart(k)
    back = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        back = (await api.get("/runtime/status")).json()
        if back["status"] == "ok":
            break
        await asyncio.sleep(0.5)

    assert paused.status_code == 409 and paused.json()["error"] == "invalid_transition"
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "force cancelled"
    assert status["status"] == "degraded"
    assert [n["name"] for n in status["nodes"]["lost"]] == [victim]
    assert status["executors"]["lost_capacity"] > 0
    assert [n["name"] for n in lost] == [victim] and "last_seen_at" in lost[0]
    assert doctor["status"] == "degraded" and victim in str(doctor["checks"])
    assert ready == 200
    assert back is not None and back["status"] == "ok" and victim in back["nodes"]["names"]
    observe(
        cluster,
        "orphans",
        orphaned_reasons=sorted(
            {j.get("orphaned", {}).get("reason", j["status"]) for j in reported.values()}
        ),
        pause=paused.json()["error"],
        cancel=cancelled.json()["status"],
        status=status["status"],
        lost=[n["name"] == victim for n in lost],
        back=back["status"],
    )
    await cancel_all(api, ids)


async def test_a_long_host_local_executor_is_never_an_orphan(
    cluster: RealCluster | SimulatedCluster, api: httpx.AsyncClient
) -> None:
    answer = await api.post("/jobs", json={"manifest": long_executor()})
    assert answer.status_code == 201, answer.text
    job_id = answer.json()["job_id"]
    seen_not_live = False
    statuses = []
    deadline = time.monotonic() + LONG_SECONDS + 30
    while time.monotonic() < deadline:
        view = await details(api, job_id)
        assert "orphaned" not in view["job"], view["job"]
        seen_not_live |= view.get("summary", {}).get("live?") is False
        statuses.append(view["job"]["status"])
        if view["job"]["status"] in ("completed", "failed", "cancelled"):
            break
        await asyncio.sleep(0.5)
    assert statuses[-1] == "completed", statuses
    observe(cluster, "long_executor", end=statuses[-1], lapsed=seen_not_live)


async def test_the_state_store_down_is_unavailable_and_streams_resume(
    cluster: RealCluster | SimulatedCluster, api: httpx.AsyncClient
) -> None:
    (job_id,) = await submit(api, "store", 1)
    follower = Follower(api, job_id)
    progress = Follower(api, job_id, "progress")
    await asyncio.sleep(1.5)
    await cluster.store_stop()
    await asyncio.sleep(2)
    answers = {}
    for path in (f"/jobs/{job_id}", "/jobs", "/system/summary", f"/jobs/{job_id}/events"):
        answer = await api.get(path)
        answers[path.replace(job_id, "{id}")] = (answer.status_code, answer.json().get("error"))
        assert answer.status_code == 503 and answer.headers["retry-after"], answer.text
    submitted = await api.post("/jobs", json={"manifest": waiting("store")})
    ready = await api.get("/ready")
    await asyncio.sleep(3)
    stale = follower.says("unavailable")
    progress_stale = progress.says("unavailable")
    await cluster.store_start()
    await eventually(lambda: follower.says("available"), within=15)
    after = await api.get(f"/jobs/{job_id}")
    await api.post(f"/jobs/{job_id}/cancel")
    events = await follower.finished()
    await progress.finished()

    assert submitted.status_code == 503 and submitted.json()["error"] == "runtime_unavailable"
    assert ready.status_code == 503
    assert stale and progress_stale and progress.says("available")
    assert after.status_code == 200
    positions = follower.ids()
    assert positions == list(range(len(positions)))
    assert events[-1] == {"event": "end", "data": "cancelled"}
    observe(
        cluster,
        "store_down",
        answers=answers,
        submit=(submitted.status_code, submitted.json()["error"]),
        ready=ready.status_code,
        stale_said=(stale, progress_stale),
        end=events[-1],
    )


async def test_after_a_long_store_outage_the_leader_fails_what_lost_its_lease(
    cluster: RealCluster | SimulatedCluster, api: httpx.AsyncClient
) -> None:
    """Longer than the core's leases (10 s): every job lost its lease meanwhile, and the
    leader, taking its own back, fails the `local_restart` jobs old enough to be judged
    (15 s). The stream says the runtime is back, then passes the failure on."""
    (job_id,) = await submit(api, "store-long", 1)
    follower = Follower(api, job_id)
    await asyncio.sleep(5)
    await cluster.store_stop()
    await asyncio.sleep(12)
    during = await api.get(f"/jobs/{job_id}")
    await cluster.store_start()
    events = await follower.finished(within=60)
    job = (await details(api, job_id))["job"]

    assert during.status_code == 503
    assert follower.says("unavailable") and follower.says("available")
    positions = follower.ids()
    assert positions == list(range(len(positions)))
    assert events[-1] == {"event": "end", "data": "failed"}
    assert job["status"] == "failed"
    last = json.loads([e for e in events if "id" in e][-1]["data"])
    observe(
        cluster,
        "store_down_long",
        end=events[-1],
        last_event=(last["type"], last.get("reason"), "agent_id" in last),
    )
