"""The history journal's limits: its memory budget over every job, watched or not, and a
job that ended without the event that ended it, against a scripted core counting reads."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from mn_api.application import journal_store
from mn_api.application.journal import HistoryJournal
from mn_api.application.use_cases import GetJob, ListEvents, TopologyLookup, WorkflowProgress
from mn_api.application.use_cases._progress_feed import Snapshot
from mn_api.domain.documents import JsonDocument
from mn_api.domain.events import EventRecord, Heartbeat
from mn_api.domain.progress import ProgressFold
from tests.unit.use_cases.fakes import KeptTopologies, ManifestFiles, ScriptedCore


@pytest.fixture(autouse=True)
def _quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pauses of a real core's pace, shortened: what is counted is reads, not time."""
    monkeypatch.setattr(journal_store, "END_PAUSE", 0.02)
    monkeypatch.setattr(journal_store, "FOLLOW_HEARTBEAT_SECONDS", 0.05)


@pytest.fixture
def runtime() -> ScriptedCore:
    return ScriptedCore()


async def _types(page: Any) -> list[str]:
    return [orjson.loads(d.raw)["type"] async for d in page]


async def _indexes(feed: AsyncIterator[Any] | None) -> list[int]:
    assert feed is not None
    return [item.index async for item in feed if isinstance(item, EventRecord)]


# -- a job that ended without its end event ---------------------------------------------------


def _ended_without_its_end(runtime: ScriptedCore, events: int) -> None:
    runtime.add("j", events, final=False, status="completed")


async def test_readers_who_know_the_job_ended_share_one_more_read_then_none(
    runtime: ScriptedCore,
) -> None:
    _ended_without_its_end(runtime, 300)
    journal = HistoryJournal(runtime)
    found = await asyncio.gather(*(journal.read("j", ended=True) for _ in range(20)))
    assert all(kept is found[0] for kept in found) and found[0] is not None
    assert found[0].final and found[0].end == 300
    assert runtime.opened == 2  # the history, then once more after a pause
    for _ in range(20):
        kept = await journal.read("j", ended=True)
        assert kept is not None and kept.end == 300
    assert runtime.opened == 2


async def test_an_end_event_recorded_during_the_pause_is_read(runtime: ScriptedCore) -> None:
    _ended_without_its_end(runtime, 10)
    journal = HistoryJournal(runtime)
    loop = asyncio.get_running_loop()
    loop.call_later(0.005, runtime.emit, "j", "job_completed")
    kept = await journal.read("j", ended=True)
    assert kept is not None and kept.final and kept.end == 11
    assert await _types(await ListEvents(runtime, journal)("j", tail=1)) == ["job_completed"]
    assert runtime.opened == 2


async def test_pages_of_a_job_that_ended_without_its_end_cost_a_bounded_number_of_reads(
    runtime: ScriptedCore,
) -> None:
    _ended_without_its_end(runtime, 120)
    journal = HistoryJournal(runtime)
    events = ListEvents(runtime, journal)
    for _ in range(10):
        page = await events("j", offset=100, limit=50)
        assert len(await _types(page)) == 20 and page.next_offset is None
    # The history; a catch-up that found nothing new (so the status was asked); once more.
    assert runtime.opened == 3
    assert [c for c in runtime.calls if c[0] == "get_job"] == [("get_job", "j")]


async def test_details_of_a_job_that_ended_without_its_end_read_its_history_once_more(
    runtime: ScriptedCore,
) -> None:
    _ended_without_its_end(runtime, 40)
    journal = HistoryJournal(runtime)
    get_job = GetJob(runtime, TopologyLookup(KeptTopologies(), ManifestFiles()), journal)
    answers = await asyncio.gather(*(get_job("j") for _ in range(10)))
    for _ in range(10):
        answers.append(await get_job("j"))
    newest = [e["timestamp"] for e in answers[0]["recent_events"]]
    assert newest[0] == "t000039" and len(newest) == 25
    assert all([e["timestamp"] for e in a["recent_events"]] == newest for a in answers)
    assert runtime.opened == 2


async def test_a_followed_job_that_ends_without_its_end_event_ends_its_watchers_once(
    runtime: ScriptedCore,
) -> None:
    runtime.add("j", 5, final=False)
    journal = HistoryJournal(runtime, heartbeat_seconds=0.05)
    watchers = [asyncio.create_task(_indexes(await journal.watch("j"))) for _ in range(5)]
    await asyncio.sleep(0.02)
    runtime.emit("j")
    runtime.statuses["j"] = "cancelled"  # and the event that says so is lost
    seen = await asyncio.wait_for(asyncio.gather(*watchers), 5)
    assert all(s == list(range(6)) for s in seen)
    opened = runtime.opened
    assert opened == 1  # the follower's stream, which the runtime ended as the job ended
    for _ in range(10):
        kept = await journal.read("j", ended=True)
        assert kept is not None and kept.final and kept.end == 6
    assert runtime.opened == opened


class FollowsForEver(ScriptedCore):
    """A core that follows a job until its end event, which it lost: once the history is
    sent, heartbeats for ever, whatever the job's status."""

    async def stream_events(  # type: ignore[override]
        self, job_id: str, *, follow: bool, after: int = -1, heartbeat_seconds: float | None = None
    ) -> AsyncIterator[EventRecord | Heartbeat]:
        async for item in super().stream_events(job_id, follow=False, after=after):
            yield item
        while follow:
            await asyncio.sleep(heartbeat_seconds or 0.05)
            yield Heartbeat()


async def test_watchers_of_a_quiet_job_that_ended_without_its_end_event_are_ended(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(journal_store, "QUIET_STATUS_SECONDS", 0.2)
    runtime = FollowsForEver()
    runtime.add("j", 4, final=False)
    journal = HistoryJournal(runtime, heartbeat_seconds=0.05)
    watchers = [asyncio.create_task(_indexes(await journal.watch("j"))) for _ in range(3)]
    await asyncio.sleep(0.05)
    runtime.statuses["j"] = "completed"  # and the event that says so is lost
    seen = await asyncio.wait_for(asyncio.gather(*watchers), 5)
    assert all(s == list(range(4)) for s in seen)
    assert runtime.opened == 2  # the follower's stream, and one more read
    kept = await journal.read("j", ended=True)
    assert kept is not None and kept.final and runtime.opened == 2


async def test_a_replay_reopens_a_history_taken_as_whole(runtime: ScriptedCore) -> None:
    _ended_without_its_end(runtime, 3)
    journal = HistoryJournal(runtime)
    assert (await journal.read("j", ended=True)).final  # type: ignore[union-attr]
    runtime.statuses["j"] = "running"
    runtime.emit("j", "dead_letter_replayed")
    runtime.emit("j", "job_completed")
    journal.reopen("j")
    kept = await journal.read("j")
    assert kept is not None and kept.final and kept.end == 5


# -- the memory budget ------------------------------------------------------------------------


class FreshBytes(ScriptedCore):
    """A scripted core whose events arrive as new bytes, as they do off the wire: what the
    journal keeps is its own, and tracemalloc counts it."""

    async def stream_events(  # type: ignore[override]
        self, job_id: str, **options: Any
    ) -> AsyncIterator[EventRecord | Heartbeat]:
        async for item in super().stream_events(job_id, **options):
            if isinstance(item, EventRecord):
                raw = bytes(bytearray(item.document.raw))
                item = EventRecord(item.index, JsonDocument(raw, orjson.loads))
            yield item


def _many_agents(runtime: ScriptedCore, job_id: str, events: int) -> None:
    runtime.add(job_id, 0)
    runtime.histories[job_id] = [
        orjson.dumps(
            {
                "type": "agent_message_received",
                "timestamp": f"t{n:06d}",
                "agent_id": f"agent-{n:05d}",
                "payload": {"from": "source", "to": f"agent-{n:05d}", "type": f"kind-{n % 7}"},
            }
        )
        for n in range(events)
    ]


async def test_what_the_journal_accounts_for_is_what_its_histories_take() -> None:
    runtime = FreshBytes()
    runtime.add("long", 3000)
    _many_agents(runtime, "wide", 1500)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        journal = HistoryJournal(runtime)
        get_job = GetJob(runtime, TopologyLookup(KeptTopologies(), ManifestFiles()), journal)
        await get_job("long")  # the newest events, kept parsed
        await journal.read("wide")
        del get_job
        gc.collect()
        taken = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert journal.jobs_held == 2
    # Not less than it takes (the allocator's rounding is counted too), nor much more.
    assert taken * 0.95 <= journal.bytes_held <= taken * 1.3, (taken, journal.bytes_held)


class _NoTopology(TopologyLookup):
    def __init__(self) -> None:
        pass

    async def __call__(self, job_id: str, details: Any) -> None:
        return None


async def _last_snapshot(progress: WorkflowProgress, job_id: str) -> dict[str, Any]:
    last: dict[str, Any] = {}
    async for item in await progress.follow(job_id):
        if isinstance(item, Snapshot):
            last = item.document
    return last


async def test_the_budget_holds_over_watched_jobs_whose_watchers_still_see_everything(
    runtime: ScriptedCore,
) -> None:
    budget = 150_000
    jobs = [f"w{n}" for n in range(8)]
    for job_id in jobs:
        runtime.add(job_id, 20, final=False)
    journal = HistoryJournal(runtime, budget_bytes=budget, heartbeat_seconds=0.05)
    progress = WorkflowProgress(
        runtime, _NoTopology(), journal, heartbeat_seconds=0.05, min_interval_seconds=0
    )
    viewer = asyncio.create_task(_last_snapshot(progress, jobs[0]))
    held = [await journal.read(job_id) for job_id in jobs]
    watchers = {
        job_id: [asyncio.create_task(_indexes(await journal.watch(job_id))) for _ in range(3)]
        for job_id in jobs
    }
    most, let_go = 0, False
    for n in range(150):
        for job_id in jobs:
            runtime.emit(job_id, note="x" * (n % 50))
            await asyncio.sleep(0)
            most = max(most, journal.bytes_held)
            # Every job is watched meanwhile: a journal let go now was a watched one.
            let_go = let_go or any(kept is not None and kept.dropped for kept in held)
    for job_id in jobs:
        runtime.emit(job_id, "job_completed")
    for job_id, tasks in watchers.items():
        everything = list(range(len(runtime.histories[job_id])))
        for seen in await asyncio.wait_for(asyncio.gather(*tasks), 10):
            assert seen == everything, job_id
    assert most <= budget and journal.bytes_held <= budget
    assert journal.stats.evictions > 0 and let_go  # watched journals were let go...
    # ...and what was read from the runtime instead is the same history.
    fold = ProgressFold()
    for raw in runtime.histories[jobs[0]]:
        fold.add(orjson.loads(raw))
    last = await asyncio.wait_for(viewer, 10)
    assert last["sequence"] == fold.events == 171 and last["status"] == "completed"
    agents = {agent["id"]: agent for agent in last["agents"]}
    assert agents["b"]["messages_received"] == fold.agents["b"].received == 170
    assert agents["a"]["messages_sent"] == fold.agents["a"].sent == 170
    for job_id in jobs:
        page = await ListEvents(runtime, journal)(job_id, offset=160, limit=20)
        stamps = [orjson.loads(d.raw)["timestamp"] async for d in page]
        assert stamps == [f"t{n:06d}" for n in range(160, 171)]
    assert journal.bytes_held <= budget


async def test_the_newest_events_kept_parsed_for_details_count_within_the_budget(
    runtime: ScriptedCore,
) -> None:
    jobs = [f"f{n}" for n in range(12)]
    for job_id in jobs:
        runtime.add(job_id, 60)
    journal = HistoryJournal(runtime, budget_bytes=120_000, job_bytes=60_000)
    get_job = GetJob(runtime, TopologyLookup(KeptTopologies(), ManifestFiles()), journal)
    for _ in range(2):
        for job_id in jobs:
            answer = await get_job(job_id)
            newest = [e["timestamp"] for e in answer["recent_events"]]
            assert newest == [f"t{n:06d}" for n in range(60, 35, -1)], job_id
            assert journal.bytes_held <= 120_000
    assert journal.stats.evictions > 0 and journal.stats.oversized == 0
