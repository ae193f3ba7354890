"""The history journal against a scripted core that counts every read of a history."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from mn_api.application.journal import HistoryJournal
from mn_api.application.use_cases import GetJob, GetJobGraph, ListEvents, TopologyLookup
from mn_api.domain.errors import HistoryWindowError, JobNotFoundError
from mn_api.domain.events import EventRecord
from mn_api.domain.graph import EventFold, GraphBuilder
from tests.unit.use_cases.fakes import KeptTopologies, ManifestFiles, ScriptedCore, event


@pytest.fixture
def runtime() -> ScriptedCore:
    return ScriptedCore()


@pytest.fixture
def journal(runtime: ScriptedCore) -> HistoryJournal:
    return HistoryJournal(runtime, heartbeat_seconds=0.05)


async def positions(page: Any) -> list[int]:
    return [orjson.loads(d.raw)["timestamp"] async for d in page]


async def test_a_finished_history_is_read_once_then_paged_from_memory(
    runtime: ScriptedCore, journal: HistoryJournal
) -> None:
    runtime.add("j", 250)
    events = ListEvents(runtime, journal)
    first = await events("j", offset=0, limit=100)
    assert await positions(first) == [f"t{n:06d}" for n in range(100)]
    assert (first.offset, first.next_offset) == (0, 100)
    last = await events("j", offset=200, limit=100)
    assert len(await positions(last)) == 51 and last.next_offset is None
    tail = await events("j", tail=3)
    assert await positions(tail) == ["t000248", "t000249", "t000250"] and tail.offset == 248
    only = await events("j", type="job_completed")
    assert await positions(only) == ["t000250"]
    assert runtime.opened == 1
    assert journal.stats.misses == 1 and journal.stats.hits == 3


async def test_concurrent_readers_of_a_live_job_share_one_read(
    runtime: ScriptedCore, journal: HistoryJournal
) -> None:
    runtime.add("j", 20, final=False)
    found = await asyncio.gather(*(journal.read("j") for _ in range(20)))
    assert {id(j) for j in found} == {id(found[0])} and found[0] is not None
    assert runtime.opened == 1
    runtime.emit("j")
    kept = await journal.read("j")
    assert kept is not None and kept.end == 21 and runtime.opened == 2


async def test_every_watcher_of_a_live_job_is_fed_by_one_core_stream(
    runtime: ScriptedCore, journal: HistoryJournal
) -> None:
    runtime.add("j", 5, final=False)

    async def watcher() -> list[int]:
        feed = await journal.watch("j")
        assert feed is not None
        return [item.index async for item in feed if isinstance(item, EventRecord)]

    watchers = [asyncio.create_task(watcher()) for _ in range(50)]
    await asyncio.sleep(0.05)
    for _ in range(10):
        runtime.emit("j")
        await asyncio.sleep(0.005)
    runtime.emit("j", "job_completed")
    seen = await asyncio.wait_for(asyncio.gather(*watchers), 5)
    assert all(s == list(range(16)) for s in seen)
    assert runtime.opened <= 2 and runtime.most_open <= 1  # a catch-up, then one follower
    assert journal.watchers == 0


async def test_a_broken_follow_stream_resumes_without_losing_or_repeating(
    runtime: ScriptedCore, journal: HistoryJournal
) -> None:
    runtime.add("j", 3, final=False)
    runtime.break_after = 4  # each following stream fails after 4 events
    feed = await journal.watch("j")
    assert feed is not None
    task = asyncio.create_task(_indexes(feed))
    for _ in range(12):
        runtime.emit("j")
        await asyncio.sleep(0.01)
    runtime.emit("j", "job_completed")
    assert await asyncio.wait_for(task, 10) == list(range(16))


async def _indexes(feed: AsyncIterator[Any]) -> list[int]:
    return [item.index async for item in feed if isinstance(item, EventRecord)]


async def test_a_history_that_changed_in_the_core_is_read_anew(
    runtime: ScriptedCore, journal: HistoryJournal
) -> None:
    runtime.add("j", 5, final=False)
    assert (await journal.read("j")) is not None
    # The core lost and rebuilt the job's history: the known last event reads differently.
    runtime.histories["j"] = [event("j", 100 + n) for n in range(8)]
    kept = await journal.read("j")
    assert kept is not None and kept.end == 8
    assert orjson.loads(kept.record(0).document.raw)["timestamp"] == "t000100"


async def test_a_slow_watcher_holds_nobody_back(
    runtime: ScriptedCore, journal: HistoryJournal
) -> None:
    runtime.add("j", 2, final=False)
    slow = await journal.watch("j")
    assert slow is not None
    assert isinstance(await anext(slow), EventRecord)  # then it stops reading
    fast = await journal.watch("j")
    assert fast is not None
    task = asyncio.create_task(_indexes(fast))
    for _ in range(5):
        runtime.emit("j")
    runtime.emit("j", "job_completed")
    assert await asyncio.wait_for(task, 5) == list(range(8))
    assert [item.index async for item in slow if isinstance(item, EventRecord)] == list(range(1, 8))


async def test_least_recently_read_histories_go_first_when_memory_is_short(
    runtime: ScriptedCore,
) -> None:
    for job_id in "abc":
        runtime.add(job_id, 100)
    journal = HistoryJournal(runtime, budget_bytes=50_000, job_bytes=30_000)
    await journal.read("a")
    await journal.read("b")
    await journal.read("a")  # a was read last: b goes first
    await journal.read("c")
    assert journal.bytes_held <= 50_000
    assert journal.stats.evictions >= 1
    opened = runtime.opened
    await journal.read("a")
    assert runtime.opened == opened  # still kept
    await journal.read("b")
    assert runtime.opened == opened + 1  # evicted: read again


async def test_a_history_too_big_to_keep_is_streamed_from_the_runtime(
    runtime: ScriptedCore,
) -> None:
    runtime.add("j", 300)
    journal = HistoryJournal(runtime, budget_bytes=100_000, job_bytes=5_000)
    assert await journal.read("j") is None
    # Only how far it goes is kept (and its progress fold), not its events.
    assert journal.stats.oversized == 1 and journal.bytes_held < 10_000  # of some 60,000
    page = await ListEvents(runtime, journal)("j", offset=290, limit=5)
    assert await positions(page) == [f"t{n:06d}" for n in range(290, 295)]


async def test_a_watcher_that_falls_out_of_a_live_window_is_told_to_reconnect(
    runtime: ScriptedCore,
) -> None:
    runtime.add("j", 2, final=False)
    journal = HistoryJournal(runtime, job_bytes=30_000, heartbeat_seconds=0.05)
    slow = await journal.watch("j")
    assert slow is not None
    assert (await anext(slow)).index == 0
    fast = await journal.watch("j", after=1)
    assert fast is not None
    task = asyncio.create_task(_indexes(fast))
    for _ in range(100):  # far more than the window holds
        runtime.emit("j")
        await asyncio.sleep(0)
    runtime.emit("j", "job_completed")
    assert await asyncio.wait_for(task, 5) == list(range(2, 103))
    with pytest.raises(HistoryWindowError) as error:
        async for _ in slow:
            pass
    assert error.value.position == 1 and "Last-Event-ID" in error.value.detail


async def test_cleared_and_unknown_jobs_leave_nothing_behind(
    runtime: ScriptedCore, journal: HistoryJournal
) -> None:
    runtime.add("j", 10)
    await journal.read("j")
    journal.forget(["j"])
    assert journal.jobs_held == 0
    with pytest.raises(JobNotFoundError):
        await journal.read("ghost")
    assert journal.jobs_held == 0


async def test_a_replay_reopens_a_finished_history(
    runtime: ScriptedCore, journal: HistoryJournal
) -> None:
    runtime.add("j", 3)
    assert (await journal.read("j")).final  # type: ignore[union-attr]
    runtime.statuses["j"] = "running"
    runtime.emit("j", "dead_letter_replayed")
    runtime.emit("j", "job_completed")
    assert (await journal.read("j")).end == 4  # type: ignore[union-attr]
    journal.reopen("j")
    kept = await journal.read("j")
    assert kept is not None and kept.end == 6 and kept.final


async def test_the_graph_from_the_fold_equals_the_graph_from_one_pass(
    runtime: ScriptedCore, journal: HistoryJournal
) -> None:
    runtime.add("j", 40)
    graph = await GetJobGraph(runtime, _NoTopology(), journal)("j")
    builder = GraphBuilder("j")
    builder.add_job((await runtime.get_job("j")).value)
    for raw in runtime.histories["j"]:
        builder.add_event(orjson.loads(raw))
    assert graph == builder.build()
    assert graph["edges"][0]["count"] == 40


def test_a_fold_counts_messages_from_the_core_as_start_messages() -> None:
    fold = EventFold()
    fold.add(
        {"type": "agent_message_received", "agent_id": "a", "payload": {"from": "runtime",
         "to": "a", "type": "init"}}
    )  # fmt: skip
    builder = GraphBuilder("j")
    builder.add_events(fold)
    graph = builder.build()
    assert [n["id"] for n in graph["nodes"]] == ["a"] and graph["edges"] == []
    assert graph["nodes"][0]["start_messages"] == 1


class _NoTopology(TopologyLookup):
    def __init__(self) -> None:
        pass

    async def __call__(self, job_id: str, details: Any) -> None:
        return None


def _stamps(details: Any) -> list[str]:
    return [e["timestamp"] for e in details["recent_events"]]


async def test_details_carry_the_newest_events_as_the_history_grows_and_starts_over(
    runtime: ScriptedCore, journal: HistoryJournal
) -> None:
    runtime.add("j", 30, final=False)
    get_job = GetJob(runtime, TopologyLookup(KeptTopologies(), ManifestFiles()), journal)
    first = await get_job("j")
    assert _stamps(first) == [f"t{n:06d}" for n in range(29, 4, -1)]  # the newest 25
    first["recent_events"].clear()  # the caller's own list
    assert _stamps(await get_job("j")) == [f"t{n:06d}" for n in range(29, 4, -1)]
    runtime.emit("j")
    assert _stamps(await get_job("j"))[:2] == ["t000030", "t000029"]
    # The core now holds another history of the same length (a restart with other data):
    # the journal starts over, and the details show the new events, not the old ones.
    runtime.histories["j"] = [event("j", 500 + n) for n in range(31)]
    assert _stamps(await get_job("j"))[:2] == ["t000530", "t000529"]
