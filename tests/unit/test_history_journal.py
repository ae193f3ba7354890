"""The history journal against a scripted runtime that counts every read of a history."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
import pytest

from mn_api.application.journal import HistoryJournal
from mn_api.application.ports import JobAck, ReplayAck, RuntimePort
from mn_api.application.use_cases import GetJobGraph, ListEvents, TopologyLookup
from mn_api.domain.documents import JsonDocument
from mn_api.domain.errors import HistoryWindowError, JobNotFoundError, RuntimeUnavailableError
from mn_api.domain.events import EventRecord, Heartbeat
from mn_api.domain.graph import EventFold, GraphBuilder


def event(job_id: str, n: int, kind: str = "agent_message_received") -> bytes:
    value: dict[str, Any] = {"type": kind, "job_id": job_id, "timestamp": f"t{n:06d}"}
    if kind == "agent_message_received":
        value["agent_id"] = "b"
        value["payload"] = {"from": "a", "to": "b", "type": "task", "message_id": str(n)}
    return orjson.dumps(value)


class ScriptedRuntime(RuntimePort):
    """Histories held as lists; every StreamEvents call is counted, and can be made to break."""

    def __init__(self) -> None:
        self.histories: dict[str, list[bytes]] = {}
        self.statuses: dict[str, str] = {}
        self.opened = 0
        self.open_now = 0
        self.most_open = 0
        self.break_after: int | None = None  # a following stream fails after this many
        self._grew: dict[str, asyncio.Event] = {}

    def add(self, job_id: str, events: int, *, final: bool = True) -> None:
        self.histories[job_id] = [event(job_id, n) for n in range(events)]
        if final:
            self.histories[job_id].append(event(job_id, events, "job_completed"))
        self.statuses[job_id] = "completed" if final else "running"

    def emit(self, job_id: str, kind: str = "agent_message_received") -> None:
        history = self.histories[job_id]
        history.append(event(job_id, len(history), kind))
        if kind == "job_completed":
            self.statuses[job_id] = "completed"
        self._grew.setdefault(job_id, asyncio.Event()).set()
        self._grew[job_id] = asyncio.Event()

    async def get_job(self, job_id: str) -> JsonDocument:
        if job_id not in self.histories:
            raise JobNotFoundError(job_id)
        doc = {"job": {"job_id": job_id, "status": self.statuses[job_id]}, "agents": []}
        return JsonDocument(orjson.dumps(doc), orjson.loads)

    async def stream_events(
        self,
        job_id: str,
        *,
        follow: bool,
        after: int = -1,
        heartbeat_seconds: float | None = None,
    ) -> AsyncIterator[EventRecord | Heartbeat]:
        self.opened += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            await asyncio.sleep(0)  # a real stream waits for the network before its first event
            history = self.histories.get(job_id, [])
            position, sent = after + 1, 0
            while True:
                while position < len(history):
                    if follow and self.break_after is not None and sent >= self.break_after:
                        raise RuntimeUnavailableError("the stream broke", may_have_run=True)
                    yield EventRecord(position, JsonDocument(history[position], orjson.loads))
                    position += 1
                    sent += 1
                if not follow or self.statuses.get(job_id) == "completed":
                    return
                grew = self._grew.setdefault(job_id, asyncio.Event())
                try:
                    async with asyncio.timeout(heartbeat_seconds):
                        await grew.wait()
                except TimeoutError:
                    yield Heartbeat()
        finally:
            self.open_now -= 1

    async def submit_job(self, manifest_json: str, payloads: Mapping[str, bytes]) -> JobAck:
        raise NotImplementedError

    async def list_jobs(self, limit: int, include_terminal: bool) -> JsonDocument:
        raise NotImplementedError

    async def cancel_job(self, job_id: str) -> JobAck:
        raise NotImplementedError

    async def pause_job(self, job_id: str) -> JobAck:
        raise NotImplementedError

    async def resume_job(self, job_id: str) -> JobAck:
        raise NotImplementedError

    async def clear_jobs(self) -> int:
        raise NotImplementedError

    async def cancel_all_jobs(self) -> JsonDocument:
        raise NotImplementedError

    async def replay_dead_letter(self, job_id: str, event_index: int) -> ReplayAck:
        raise NotImplementedError

    async def remove_node(self, node_name: str) -> str:
        raise NotImplementedError

    async def system_summary(self) -> JsonDocument:
        raise NotImplementedError

    async def ping(self, deadline_seconds: float) -> None:
        return None


@pytest.fixture
def runtime() -> ScriptedRuntime:
    return ScriptedRuntime()


@pytest.fixture
def journal(runtime: ScriptedRuntime) -> HistoryJournal:
    return HistoryJournal(runtime, heartbeat_seconds=0.05)


async def positions(page: Any) -> list[int]:
    return [orjson.loads(d.raw)["timestamp"] async for d in page]


async def test_a_finished_history_is_read_once_then_paged_from_memory(
    runtime: ScriptedRuntime, journal: HistoryJournal
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
    runtime: ScriptedRuntime, journal: HistoryJournal
) -> None:
    runtime.add("j", 20, final=False)
    found = await asyncio.gather(*(journal.read("j") for _ in range(20)))
    assert {id(j) for j in found} == {id(found[0])} and found[0] is not None
    assert runtime.opened == 1
    runtime.emit("j")
    kept = await journal.read("j")
    assert kept is not None and kept.end == 21 and runtime.opened == 2


async def test_every_watcher_of_a_live_job_is_fed_by_one_core_stream(
    runtime: ScriptedRuntime, journal: HistoryJournal
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
    runtime: ScriptedRuntime, journal: HistoryJournal
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
    runtime: ScriptedRuntime, journal: HistoryJournal
) -> None:
    runtime.add("j", 5, final=False)
    assert (await journal.read("j")) is not None
    # The core lost and rebuilt the job's history: the known last event reads differently.
    runtime.histories["j"] = [event("j", 100 + n) for n in range(8)]
    kept = await journal.read("j")
    assert kept is not None and kept.end == 8
    assert orjson.loads(kept.record(0).document.raw)["timestamp"] == "t000100"


async def test_a_slow_watcher_holds_nobody_back(
    runtime: ScriptedRuntime, journal: HistoryJournal
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
    runtime: ScriptedRuntime,
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
    runtime: ScriptedRuntime,
) -> None:
    runtime.add("j", 300)
    journal = HistoryJournal(runtime, budget_bytes=100_000, job_bytes=5_000)
    assert await journal.read("j") is None
    assert journal.stats.oversized == 1 and journal.bytes_held == 0
    page = await ListEvents(runtime, journal)("j", offset=290, limit=5)
    assert await positions(page) == [f"t{n:06d}" for n in range(290, 295)]


async def test_a_watcher_that_falls_out_of_a_live_window_is_told_to_reconnect(
    runtime: ScriptedRuntime,
) -> None:
    runtime.add("j", 2, final=False)
    journal = HistoryJournal(runtime, job_bytes=4_000, heartbeat_seconds=0.05)
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
    runtime: ScriptedRuntime, journal: HistoryJournal
) -> None:
    runtime.add("j", 10)
    await journal.read("j")
    journal.forget(["j"])
    assert journal.jobs_held == 0
    with pytest.raises(JobNotFoundError):
        await journal.read("ghost")
    assert journal.jobs_held == 0


async def test_a_replay_reopens_a_finished_history(
    runtime: ScriptedRuntime, journal: HistoryJournal
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
    runtime: ScriptedRuntime, journal: HistoryJournal
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
