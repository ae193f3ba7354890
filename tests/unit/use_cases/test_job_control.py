"""The use cases that act on jobs and on the cluster, against a scripted core and fake
stores: what each asks of the core, what it keeps or forgets, what it answers."""

from __future__ import annotations

import pytest

from mn_api.application.cluster import ClusterWatch
from mn_api.application.journal import HistoryJournal
from mn_api.application.use_cases import (
    CancelAllJobs,
    CancelJob,
    ClearJobs,
    ListDeadLetters,
    PauseJob,
    ReplayDeadLetter,
    ResumeJob,
    RuntimeReport,
    TopologyLookup,
)
from mn_api.domain.errors import (
    DeadLetterNotFoundError,
    InvalidTransitionError,
    JobNotFoundError,
    NodeNotFoundError,
    RuntimeAuthError,
)
from tests.unit.use_cases.fakes import KeptTopologies, ManifestFiles, ScriptedCore


@pytest.fixture
def core() -> ScriptedCore:
    return ScriptedCore()


async def test_pause_resume_and_cancel_ask_the_core_and_pass_on_its_refusals(
    core: ScriptedCore,
) -> None:
    core.add("j", 2, final=False)
    assert (await PauseJob(core)("j")).status == "paused"
    with pytest.raises(InvalidTransitionError, match="paused: no pause_job"):
        await PauseJob(core)("j")
    assert (await ResumeJob(core)("j")).status == "running"
    assert (await CancelJob(core)("j")).status == "cancelled"
    with pytest.raises(JobNotFoundError):
        await CancelJob(core)("other")
    assert [c[0] for c in core.calls] == [
        "pause_job", "pause_job", "resume_job", "cancel_job", "cancel_job",
    ]  # fmt: skip


async def test_cancel_all_is_one_call_where_the_core_has_it(core: ScriptedCore) -> None:
    core.add("done", 1)
    core.add("a", final=False)
    core.add("b", final=False, status="paused")
    outcome = await CancelAllJobs(core)()
    assert (outcome.via, outcome.status, outcome.active) == ("CancelAllJobs", "cancelled", 2)
    assert outcome.cancelled == ["a", "b"]
    assert [c[0] for c in core.calls] == ["cancel_all_jobs"]


async def test_cancel_all_goes_job_by_job_elsewhere_and_tells_each_outcome() -> None:
    core = ScriptedCore(cancel_all=False)
    for job_id in ("a", "b", "c", "d", "e"):
        core.add(job_id, final=False)
    core.add("done", 1)
    # Between the listing and their cancel: one ends, one is cleared, one is refused.
    core.refuse("cancel_job", "b", InvalidTransitionError("job b is already terminal"))
    core.refuse("cancel_job", "c", JobNotFoundError("c"))
    core.refuse("cancel_job", "d", RuntimeAuthError("the core refused the token"))
    outcome = await CancelAllJobs(core)()
    assert (outcome.via, outcome.active, outcome.status) == ("CancelJob", 5, "partially_cancelled")
    # Newest first, as the core lists them.
    assert outcome.cancelled == ["e", "a"]
    assert outcome.ended == ["c", "b"]
    assert [(job_id, type(error)) for job_id, error in outcome.refused] == [("d", RuntimeAuthError)]
    assert ("cancel_job", "done") not in core.calls


async def test_cancel_all_with_nothing_live_cancels_nothing() -> None:
    core = ScriptedCore(cancel_all=False)
    core.add("done", 1)
    outcome = await CancelAllJobs(core)()
    assert (outcome.status, outcome.active, outcome.cancelled) == ("no_active_jobs", 0, [])


async def test_a_refused_cancel_that_is_not_about_an_ended_job_is_a_refusal() -> None:
    core = ScriptedCore(cancel_all=False)
    core.add("a", final=False)
    core.refuse("cancel_job", "a", InvalidTransitionError("job a is being validated"))
    outcome = await CancelAllJobs(core)()
    assert (outcome.status, outcome.ended, len(outcome.refused)) == ("failed", [], 1)


async def test_clearing_forgets_the_topologies_of_finished_jobs_only(core: ScriptedCore) -> None:
    topologies = KeptTopologies()
    for job_id, final in (("old", True), ("live", False)):
        core.add(job_id, 1, final=final)
        topologies.kept[job_id] = {"nodes": [], "edges": []}
    assert await ClearJobs(core, topologies)() == 1
    assert list(topologies.kept) == ["live"]
    assert list(core.statuses) == ["live"]


async def test_clearing_forgets_the_coordinators_seen_of_every_job_no_longer_live(
    core: ScriptedCore,
) -> None:
    watch = ClusterWatch(core)
    for job_id, final in (("old", True), ("live", False)):
        core.add(job_id, 1, final=final)
        watch.remember_coordinator(job_id, "mn1@host", 0)
    watch.remember_coordinator("gone-long-ago", "mn2@host", 0)  # no longer in any listing
    assert await ClearJobs(watch, KeptTopologies(), cluster=watch)() == 1
    assert [watch.coordinator(j) for j in ("old", "gone-long-ago", "live")] == [
        None,
        None,
        "mn1@host",
    ]


async def test_clearing_succeeds_when_the_topologies_are_left_to_expire(
    core: ScriptedCore,
) -> None:
    topologies = KeptTopologies()
    core.add("old", 1)
    topologies.down = True
    assert await ClearJobs(core, topologies)() == 1


@pytest.mark.parametrize("journal", [False, True], ids=["history", "journal"])
async def test_replay_finds_the_nth_dead_letter_in_the_history(
    core: ScriptedCore, journal: bool
) -> None:
    core.add("j", 2, final=False)
    core.emit("j", "dead_letter", agent_id="x", payload={"reason": "full"})
    core.emit("j", "agent_message_received")
    core.emit("j", "dead_letter", agent_id="y")
    core.emit("j", "job_failed")
    core.statuses["j"] = "failed"
    kept = HistoryJournal(core, heartbeat_seconds=0.05) if journal else None
    letters = await ListDeadLetters(core, kept)("j")
    assert [(d["index"], d["event_index"], d["agent_id"]) for d in letters] == [
        (0, 2, "x"),
        (1, 4, "y"),
    ]
    assert letters[0]["reason"] == "full" and "reason" not in letters[1]
    replay = ReplayDeadLetter(core, kept)
    result = await replay("j", 1)
    assert (result.event_index, result.agent_id, result.job_status) == (4, "y", "running")
    with pytest.raises(DeadLetterNotFoundError):
        await replay("j", 2)
    assert [c for c in core.calls if c[0] == "replay_dead_letter"] == [
        ("replay_dead_letter", "j", "4")
    ]
    if kept is not None:
        await kept.close()


async def test_dead_letters_of_an_unknown_job_say_so(core: ScriptedCore) -> None:
    with pytest.raises(JobNotFoundError):
        await ListDeadLetters(core)("nope")


async def test_a_topology_comes_from_the_core_then_the_store_then_the_manifest_file() -> None:
    now = [100.0]
    topologies = KeptTopologies()
    manifests = ManifestFiles({"/m/manifest.json": {"nodes": [{"node_id": "f"}]}})
    lookup = TopologyLookup(topologies, manifests, clock=lambda: now[0])
    own = {"nodes": [{"node_id": "core"}]}
    assert await lookup("a", {"job": {"topology": own}}) == own
    assert topologies.loads == 0  # the core's own needs no store
    topologies.kept["b"] = {"nodes": [{"node_id": "kept"}]}
    assert await lookup("b", {"job": {}}) == topologies.kept["b"]
    assert await lookup("b", {"job": {}}) == topologies.kept["b"]
    assert topologies.loads == 1  # kept ones do not change: read once
    ref = {"job": {"manifest_ref": {"manifest_path": "/m/manifest.json"}}}
    assert await lookup("c", ref) == {"nodes": [{"node_id": "f"}]}
    # A job without one is taken to have none for a while, then looked up again.
    assert await lookup("d", {"job": {}}) is None
    topologies.kept["d"] = {"nodes": [{"node_id": "late"}]}
    assert await lookup("d", {"job": {}}) is None
    now[0] += 11
    assert await lookup("d", {"job": {}}) == topologies.kept["d"]


async def test_a_topology_store_that_does_not_answer_means_no_topology() -> None:
    topologies = KeptTopologies()
    topologies.down = True
    lookup = TopologyLookup(topologies, ManifestFiles())
    assert await lookup("a", {"job": {}}) is None


async def test_the_operator_report_reads_the_cluster_and_takes_nodes_out() -> None:
    core = ScriptedCore(nodes=("mn1@a", "mn2@b"))
    core.add("j", final=False)
    report = RuntimeReport(core, timeout_seconds=1.0)
    status = await report.status()
    assert status["nodes"] == {"total": 2, "names": ["mn1@a", "mn2@b"]}
    assert status["executors"]["capacity"] == 4
    assert status["jobs"] == {"total": 1, "by_status": {"running": 1}}
    doctor = await report.doctor()
    assert doctor["status"] == "ok"
    assert [c["id"] for c in doctor["checks"]] == ["runtime", "nodes", "executors"]
    with pytest.raises(NodeNotFoundError):
        await report.remove_node("mn9@z")
    assert await report.remove_node("mn2@b") == {"node_name": "mn2@b", "status": "removed mn2@b"}
    # Leaving takes out the node the core says it runs on.
    assert (await report.leave())["node_name"] == "mn1@a"
    assert (await report.status())["status"] == "no_nodes"
    assert (await report.doctor())["status"] == "degraded"
