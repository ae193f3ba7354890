"""The history journal's limits, measured in process: `python -m bench.history_journal --limits`.

A scripted 1.2.x core runs in a child process (so the CPU counted is the gateway side's
own): its jobs' events are `{"type", "timestamp": "t000042", "job_id", "note"}`; a live job
grows by one event every `--pace-ms` until `--live-events`, then ends with `job_completed`; a
job whose history lost its end event has the status `completed` and no such event (a
following stream of it sends heartbeats for ever, as a core that waits for the event does).
The gateway's side is the history journal, ListEvents and GrpcRuntime of this tree.

- Ended without its end event: per request, the wall time, the CPU and the core reads of a
  reader that knows the job ended (the job's details, its progress) and of an events page,
  20 requests one after another or at once, then 20 more, after a first read of the job.
- The budget over watched jobs: `--watched` live jobs, 3 journal watchers each, under
  `--budget-kb`: the most the journal accounted for, what tracemalloc saw the gateway side
  hold at most beyond its size before, and whether every watcher saw every event in order.
- `--sizes`: what tracemalloc counts for kept histories beside what the journal accounts.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import tracemalloc
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import grpc
import orjson

from bench._procs import free_port
from mn_api.adapters.grpc.protos import (
    job_pb2,
    job_pb2_grpc,
    observability_pb2,
    observability_pb2_grpc,
)
from mn_api.adapters.grpc.runtime import GrpcRuntime
from mn_api.application.journal import HistoryJournal
from mn_api.application.use_cases import ListEvents
from mn_api.domain.events import EventRecord

LOST_END = "lost-end"


def _event(job_id: str, n: int, kind: str = "agent_message_received", note: int = 40) -> str:
    return orjson.dumps(
        {
            "type": kind,
            "timestamp": f"t{n:06d}",
            "job_id": job_id,
            "agent_id": "sink",
            "payload": {"from": "source", "to": "sink", "type": "reading"},
            "note": "x" * note,
        }
    ).decode()


class _Core(job_pb2_grpc.JobServiceServicer, observability_pb2_grpc.ObservabilityServiceServicer):
    def __init__(self, events: int, live: int, live_events: int, pace: float) -> None:
        self.histories = {LOST_END: [_event(LOST_END, n) for n in range(events)]}
        self.statuses = {LOST_END: "completed"}
        for k in range(live):
            self.histories[f"live-{k}"] = []
            self.statuses[f"live-{k}"] = "running"
        self.grew = asyncio.Condition()
        self.live_events, self.pace = live_events, pace
        self.streams = 0

    async def grow(self) -> None:
        for n in range(self.live_events + 1):
            await asyncio.sleep(self.pace)
            async with self.grew:
                for job_id, status in self.statuses.items():
                    if status == "running":
                        kind = "job_completed" if n == self.live_events else None
                        raw = _event(job_id, n, kind or "agent_message_received", 200 + n % 400)
                        self.histories[job_id].append(raw)
                        if kind:
                            self.statuses[job_id] = "completed"
                self.grew.notify_all()

    async def GetJob(self, request: Any, context: Any) -> Any:
        status = self.statuses.get(request.job_id)
        document = {"job": {"job_id": request.job_id, "status": status}} if status else {}
        return job_pb2.GetJobResponse(job_json=orjson.dumps(document).decode())

    async def StreamEvents(self, request: Any, context: Any) -> AsyncIterator[Any]:
        self.streams += 1
        history = self.histories.get(request.job_id, [])
        heartbeat = (request.heartbeat_interval_ms or 15_000) / 1000
        sent = 0
        while True:
            while sent < len(history):
                yield observability_pb2.EventResponse(event_json=history[sent], version=1)
                sent += 1
            if not request.follow or '"job_completed"' in (history[-1] if history else ""):
                return
            async with self.grew:
                try:
                    await asyncio.wait_for(self.grew.wait(), heartbeat)
                except TimeoutError:
                    beat = {"type": "stream_heartbeat", "job_id": request.job_id}
                    yield observability_pb2.EventResponse(event_json=orjson.dumps(beat).decode())


async def _serve(port: int, options: dict[str, Any], ready: Any, streams: Any) -> None:
    core = _Core(**options)
    server = grpc.aio.server()
    job_pb2_grpc.add_JobServiceServicer_to_server(core, server)
    observability_pb2_grpc.add_ObservabilityServiceServicer_to_server(core, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    ready.set()
    while True:
        streams.value = core.streams
        if core.live_events and not getattr(core, "growing", None):
            core.growing = asyncio.create_task(core.grow())  # type: ignore[attr-defined]
        await asyncio.sleep(0.01)


def _core_process(port: int, options: dict[str, Any], ready: Any, streams: Any) -> None:
    asyncio.run(_serve(port, options, ready, streams))


class ScriptedCore:
    """The scripted core in a child process; `streams` counts the StreamEvents it served."""

    def __init__(self, **options: Any) -> None:
        self.port = free_port()
        context = multiprocessing.get_context("spawn")
        ready = context.Event()
        self._streams = context.Value("i", 0)
        self._process = context.Process(
            target=_core_process, args=(self.port, options, ready, self._streams), daemon=True
        )
        self._process.start()
        ready.wait(30)

    @property
    def streams(self) -> int:
        time.sleep(0.05)
        return self._streams.value

    def stop(self) -> None:
        self._process.terminate()
        self._process.join(10)


async def _timed(work: Any, count: int, *, together: bool) -> tuple[float, float]:
    """Wall and CPU seconds per request of `count` requests, one after another or at once."""
    wall, cpu = time.perf_counter(), time.process_time()
    if together:
        await asyncio.gather(*(work() for _ in range(count)))
    else:
        for _ in range(count):
            await work()
    return (time.perf_counter() - wall) / count, (time.process_time() - cpu) / count


async def _lost_end_once(core: ScriptedCore, events: int, kind: str, together: bool) -> str:
    """20 requests of one kind, in a gateway that read the job once before."""
    runtime = GrpcRuntime(f"127.0.0.1:{core.port}", timeout_seconds=30)
    journal = HistoryJournal(runtime)
    pages = ListEvents(runtime, journal)
    try:
        await journal.read(LOST_END)  # the first read: not measured

        async def request() -> None:
            if kind == "details":
                await journal.read(LOST_END, ended=True)
            else:
                await pages(LOST_END, offset=events - 50, limit=50)

        answers = []
        for _ in range(2):  # the first 20, then 20 more
            before = core.streams
            wall, cpu = await _timed(request, 20, together=together)
            answers.append(f"{wall * 1000:.0f} / {cpu * 1000:.1f} / {core.streams - before}")
        return ", then ".join(answers)
    finally:
        await journal.close()
        await runtime.close()


async def lost_end(events: int) -> dict[str, str]:
    core = ScriptedCore(events=events, live=0, live_events=0, pace=0.0)
    figures: dict[str, str] = {}
    try:
        for label, together in (("one after another", False), ("20 at once", True)):
            for kind in ("details", "page"):
                figure = f"{kind}, {label}: wall ms / CPU ms per request / core reads"
                figures[figure] = await _lost_end_once(core, events, kind, together)
    finally:
        core.stop()
    return figures


async def _watch(journal: HistoryJournal, job_id: str) -> list[int]:
    feed = await journal.watch(job_id)
    if feed is None:  # not kept: as a watcher is then served, from the runtime
        feed = journal._runtime.stream_events(job_id, follow=True, heartbeat_seconds=1.0)
    async with aclosing(feed):
        return [item.index async for item in feed if isinstance(item, EventRecord)]


async def budget(watched: int, budget_kb: int, live_events: int, pace_ms: int) -> dict[str, str]:
    core = ScriptedCore(events=0, live=watched, live_events=live_events, pace=pace_ms / 1000)
    runtime = GrpcRuntime(f"127.0.0.1:{core.port}", timeout_seconds=30)
    journal = HistoryJournal(runtime, budget_bytes=budget_kb * 1024, heartbeat_seconds=1.0)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        jobs = [f"live-{k}" for k in range(watched)]
        tasks = [asyncio.create_task(_watch(journal, job_id)) for job_id in jobs for _ in range(3)]
        most = 0
        while not all(task.done() for task in tasks):
            most = max(most, journal.bytes_held)
            await asyncio.sleep(0.01)
        held = tracemalloc.get_traced_memory()[1] - base
        seen = [task.result() for task in tasks]
    finally:
        tracemalloc.stop()
        await journal.close()
        await runtime.close()
        core.stop()
    everything = list(range(live_events + 1))
    right = sum(1 for s in seen if s == everything)
    return {
        "budget (KB)": f"{budget_kb:,}",
        "most the journal accounted for (KB)": f"{most / 1024:,.0f}",
        "most traced beyond the start, watchers and streams included (KB)": f"{held / 1024:,.0f}",
        "watchers that saw every event in order": f"{right} of {len(seen)}",
    }


async def sizes(events: int) -> dict[str, str]:
    """What tracemalloc counts for one kept history of `events` events beside the account."""
    core = ScriptedCore(events=events, live=0, live_events=0, pace=0.0)
    runtime = GrpcRuntime(f"127.0.0.1:{core.port}", timeout_seconds=30)
    journal = HistoryJournal(runtime)
    try:
        await runtime.get_job(LOST_END)  # the channel, before anything is counted
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        kept = await journal.read(LOST_END, ended=True)
        assert kept is not None
        kept.newest(25)
        taken = tracemalloc.get_traced_memory()[0] - base
        accounted = journal.bytes_held
    finally:
        tracemalloc.stop()
        await journal.close()
        await runtime.close()
        core.stop()
    return {
        "events kept": f"{kept.end:,}",
        "traced (KB)": f"{taken / 1024:,.0f}",
        "accounted (KB)": f"{accounted / 1024:,.0f}",
    }
