"""ClusterWatch and what the use cases say through it: members and lost nodes, the core's
state store down, orphans judged by their coordinator, and streams that say when the
runtime stops answering."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
import pytest

from mn_api.application.cluster import ClusterWatch
from mn_api.application.journal import HistoryJournal
from mn_api.application.use_cases import GetJob, GetSystemSummary, RuntimeReport, TopologyLookup
from mn_api.domain.documents import JsonDocument
from mn_api.domain.errors import (
    CoordinatorGoneError,
    JobNotFoundError,
    ManifestInvalidError,
    RuntimeUnavailableError,
    StateStoreDownError,
)
from mn_api.domain.events import EventRecord, Heartbeat, RuntimeState
from tests.unit.use_cases.fakes import KeptTopologies, ManifestFiles, ScriptedCore, document

STORE_REFUSAL = "failed to persist initial job: %Redix.ConnectionError{reason: :closed}"


class ClusterCore(ScriptedCore):
    """A core of several nodes whose state store can go down, answering as a real one
    does then; each job's agents and summary are set by the test."""

    def __init__(self) -> None:
        super().__init__(nodes=("mn1@127.0.0.1", "mn2@127.0.0.1", "mn3@127.0.0.1"))
        self.store_up = True
        self.agents: dict[str, list[dict[str, Any]]] = {}
        self.live: dict[str, bool] = {}

    async def get_job(self, job_id: str) -> JsonDocument:
        if not self.store_up:
            raise JobNotFoundError(job_id)  # GetJob `{}`, as for an unknown job
        await super().get_job(job_id)
        details = {
            "job": {"job_id": job_id, "status": self.statuses[job_id]},
            "agents": self.agents.get(job_id, []),
            "summary": {"live?": self.live.get(job_id, True)},
            "recent_events": [],
        }
        return document(details)

    async def list_jobs(self, limit: int, include_terminal: bool) -> JsonDocument:
        if not self.store_up:
            return JsonDocument(b'{"data":[]}', orjson.loads)
        return await super().list_jobs(limit, include_terminal)

    async def system_summary(self) -> JsonDocument:
        if not self.store_up:
            return JsonDocument(b"{}", orjson.loads)
        return await super().system_summary()

    async def submit_job(self, manifest_json: str, payloads: Mapping[str, bytes]) -> Any:
        if not self.store_up:
            raise ManifestInvalidError([STORE_REFUSAL])
        return await super().submit_job(manifest_json, payloads)

    async def stream_events(
        self,
        job_id: str,
        *,
        follow: bool,
        after: int = -1,
        heartbeat_seconds: float | None = None,
    ) -> AsyncIterator[EventRecord | Heartbeat]:
        stream = super().stream_events(
            job_id, follow=follow, after=after, heartbeat_seconds=heartbeat_seconds
        )
        async for item in stream:
            if not self.store_up:
                # An empty stream, as for an unknown job (a following one ends).
                await stream.aclose()
                return
            yield item


@pytest.fixture
def core() -> ClusterCore:
    return ClusterCore()


@pytest.fixture
def watch(core: ClusterCore) -> ClusterWatch:
    return ClusterWatch(core, summary_max_age_seconds=0)


def get_job(watch: ClusterWatch, journal: HistoryJournal | None = None) -> GetJob:
    lookup = TopologyLookup(KeptTopologies(), ManifestFiles())
    return GetJob(watch, lookup, journal, cluster=watch)


def scheduled_on(core: ClusterCore, job_id: str, node: str) -> None:
    core.add(job_id, final=False)
    core.emit(job_id, "job_scheduled", node=node)


# -- the state store --------------------------------------------------------------------------


async def test_a_core_without_its_state_store_is_unavailable_never_empty(
    core: ClusterCore, watch: ClusterWatch
) -> None:
    core.add("j1", final=False)
    assert (await watch.list_jobs(20, True)).value["data"]
    core.store_up = False
    for call in (
        watch.get_job("j1"),
        watch.list_jobs(20, True),
        watch.system_summary(),
        watch.submit_job("{}", {}),
        watch.ping(1.0),
    ):
        with pytest.raises(StateStoreDownError) as caught:
            await call
        assert "state store" in caught.value.detail
    assert watch.store_down_since is not None
    with pytest.raises(StateStoreDownError):
        async for _ in watch.stream_events("j1", follow=False, after=0):
            pass
    assert core.submitted == {}  # nothing was created by the refused submission
    core.store_up = True
    assert (await watch.get_job("j1")).value["job"]["status"] == "running"
    assert watch.store_down_since is None


async def test_an_unknown_job_stays_unknown_while_the_store_answers(watch: ClusterWatch) -> None:
    with pytest.raises(JobNotFoundError):
        await watch.get_job("nope")
    assert (await watch.list_jobs(20, True)).value == {"data": []}
    with pytest.raises(ManifestInvalidError):
        await ClusterWatch(RefusingCore()).submit_job("{}", {})


class RefusingCore(ClusterCore):
    async def submit_job(self, manifest_json: str, payloads: Mapping[str, bytes]) -> Any:
        raise ManifestInvalidError(["graph_id is required"])


# -- members ----------------------------------------------------------------------------------


async def test_a_node_that_leaves_is_listed_lost_and_the_cluster_degraded(
    core: ClusterCore, watch: ClusterWatch
) -> None:
    report = RuntimeReport(watch, 1.0, cluster=watch)
    assert (await report.status())["status"] == "ok"
    core.nodes.remove("mn3@127.0.0.1")
    status = await report.status()
    assert status["status"] == "degraded"
    assert status["nodes"]["total"] == 2
    assert [n["name"] for n in status["nodes"]["lost"]] == ["mn3@127.0.0.1"]
    assert status["executors"] == {"capacity": 4, "available": 0, "lost_capacity": 2}
    nodes = await report.nodes()
    assert [(n["name"], n.get("status")) for n in nodes] == [
        ("mn1@127.0.0.1", None),
        ("mn2@127.0.0.1", None),
        ("mn3@127.0.0.1", "lost"),
    ]
    assert nodes[2]["last_seen_at"] <= nodes[2]["lost_at"] and "self?" not in nodes[2]
    summary = await GetSystemSummary(watch, cluster=watch)()
    assert summary["nodes"][-1]["status"] == "lost"
    doctor = await report.doctor()
    assert doctor["status"] == "degraded"
    (nodes_check,) = [c for c in doctor["checks"] if c["id"] == "nodes"]
    assert not nodes_check["ok"] and "mn3@127.0.0.1" in nodes_check["message"]
    assert "2 executor slot(s)" in nodes_check["message"]
    await watch.ping(1.0)  # a core that answers is still ready

    core.nodes.append("mn3@127.0.0.1")  # back under the same name
    assert (await report.status())["status"] == "ok"
    assert [n.get("status") for n in await report.nodes()] == [None, None, None]


async def test_a_node_taken_out_on_purpose_is_not_lost(
    core: ClusterCore, watch: ClusterWatch
) -> None:
    await watch.system_summary()
    await watch.remove_node("mn2@127.0.0.1")
    await watch.system_summary()
    assert watch.membership.lost() == []
    assert watch.membership.members() == ["mn1@127.0.0.1", "mn3@127.0.0.1"]


# -- orphans ----------------------------------------------------------------------------------


async def test_a_job_whose_coordinator_left_is_orphaned_and_names_it(
    core: ClusterCore, watch: ClusterWatch
) -> None:
    scheduled_on(core, "j1", "mn2@127.0.0.1")
    scheduled_on(core, "j2", "mn3@127.0.0.1")
    details = await get_job(watch)("j1")
    assert details["job"]["coordinator_node"] == "mn2@127.0.0.1"
    assert "orphaned" not in details["job"]

    core.nodes.remove("mn2@127.0.0.1")
    details = await get_job(watch)("j1")
    orphaned = details["job"]["orphaned"]
    assert orphaned["reason"] == "coordinator_lost"
    assert orphaned["coordinator_node"] == "mn2@127.0.0.1"
    assert orphaned["detail"].startswith("node mn2@127.0.0.1, which coordinated it, left the")
    assert "restart" not in orphaned["detail"]
    # A job coordinated by a node that is still a member is healthy.
    assert "orphaned" not in (await get_job(watch)("j2"))["job"]


async def test_a_job_recovered_elsewhere_is_not_orphaned(
    core: ClusterCore, watch: ClusterWatch
) -> None:
    scheduled_on(core, "j1", "mn2@127.0.0.1")
    await get_job(watch)("j1")
    core.nodes.remove("mn2@127.0.0.1")
    core.emit("j1", "job_recovery_started")  # generation A names no node
    details = await get_job(watch)("j1")
    assert "orphaned" not in details["job"] and "coordinator_node" not in details["job"]


async def test_a_busy_executor_without_heartbeats_is_no_orphan(
    core: ClusterCore, watch: ClusterWatch
) -> None:
    scheduled_on(core, "j1", "mn1@127.0.0.1")
    core.live["j1"] = False
    core.agents["j1"] = [
        {
            "agent_id": "run",
            "agent_type": "executor",
            "status": "running",
            "live?": False,
            "last_heartbeat_at": "t1",
        },
        {"agent_id": "feed", "agent_type": "router", "status": "busy", "live?": False},
    ]
    assert "orphaned" not in (await get_job(watch)("j1"))["job"]
    # The same job once nothing runs: no heartbeat and no command is what is said.
    core.agents["j1"][0]["status"] = "ready"
    orphaned = (await get_job(watch)("j1"))["job"]["orphaned"]
    assert orphaned["reason"] == "no_heartbeat" and orphaned["last_heartbeat_at"] == "t1"
    assert "restart" not in orphaned["detail"]


async def test_a_refused_pause_for_want_of_a_coordinator_marks_the_job(
    core: ClusterCore, watch: ClusterWatch
) -> None:
    scheduled_on(core, "j1", "mn1@127.0.0.1")
    core.refuse("pause_job", "j1", CoordinatorGoneError("j1", "running"))
    with pytest.raises(CoordinatorGoneError):
        await watch.pause_job("j1")
    orphaned = (await get_job(watch)("j1"))["job"]["orphaned"]
    assert orphaned["reason"] == "no_coordinator"
    await watch.cancel_job("j1")
    assert "orphaned" not in (await get_job(watch)("j1"))["job"]


async def test_an_old_scheduling_read_again_does_not_hide_a_recovery(
    core: ClusterCore, watch: ClusterWatch
) -> None:
    scheduled_on(core, "j1", "mn2@127.0.0.1")
    core.emit("j1", "job_recovery_started", node="mn1@127.0.0.1")
    async for _ in watch.stream_events("j1", follow=False):
        pass
    assert watch.coordinator("j1") == "mn1@127.0.0.1"
    async for _item in watch.stream_events("j1", follow=False):
        break  # a page that stops at the scheduling
    watch.remember_coordinator("j1", "mn2@127.0.0.1", 0)
    assert watch.coordinator("j1") == "mn1@127.0.0.1"


# -- streams ----------------------------------------------------------------------------------


async def test_watchers_are_told_when_the_runtime_stops_answering_and_when_it_is_back(
    core: ClusterCore, watch: ClusterWatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("mn_api.application.journal.STALE_AFTER_SECONDS", 0.05)
    monkeypatch.setattr("mn_api.application.journal.RESUME_BACKOFF", (0.02, 0.05))
    core.add("j1", 3, final=False)
    journal = HistoryJournal(watch, heartbeat_seconds=0.05)
    feed = await journal.watch("j1")
    assert feed is not None
    seen: list[Any] = []
    came = asyncio.Event()

    async def read() -> None:
        async for item in feed:
            if type(item) is not Heartbeat:
                seen.append(item)
                came.set()
            if isinstance(item, EventRecord) and item.value["type"] == "job_completed":
                return

    async def until(check: Any) -> None:
        async with asyncio.timeout(5):
            while not check():
                came.clear()
                await came.wait()

    reader = asyncio.create_task(read())
    await until(lambda: len(seen) >= 3)
    core.store_up = False
    core.emit("j1")  # wakes the follower, whose reads now fail
    await until(lambda: any(isinstance(s, RuntimeState) for s in seen))
    down = next(s for s in seen if isinstance(s, RuntimeState))
    assert not down.available and isinstance(down.error, RuntimeUnavailableError)
    core.store_up = True
    core.emit("j1", "job_completed")
    async with asyncio.timeout(5):
        await reader
    states = [s for s in seen if isinstance(s, RuntimeState)]
    assert [s.available for s in states] == [False, True]
    positions = [s.index for s in seen if isinstance(s, EventRecord)]
    assert positions == list(range(5))  # nothing lost or repeated
    await journal.close()
