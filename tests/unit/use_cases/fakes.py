"""Fakes of the ports for the use cases' own tests: plain data, every call recorded.

`ScriptedCore` holds jobs as statuses and histories and answers as the core's documents
read; `refuse(operation, job_id, error)` makes one call fail, and `emit()` grows a
history while followers wait. The stores keep what they are given in dictionaries and
fail on demand, the way a shared store goes away on a bad day.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, BinaryIO

import orjson

from mn_api.application.ports import (
    Blueprint,
    BlueprintSource,
    BundleContents,
    BundleStore,
    JobAck,
    ManifestSource,
    ReplayAck,
    RuntimePort,
    StoredBundle,
    TopologyStore,
)
from mn_api.domain.documents import JsonDocument
from mn_api.domain.errors import (
    BlueprintNotFoundError,
    BundleNotFoundError,
    DomainError,
    InvalidTransitionError,
    JobNotFoundError,
    NodeNotFoundError,
    NotSupportedError,
    RuntimeUnavailableError,
    SharedStateUnavailableError,
)
from mn_api.domain.events import EventRecord, Heartbeat
from mn_api.domain.status import is_terminal


def event(job_id: str, n: int, kind: str = "agent_message_received", **extra: Any) -> bytes:
    """One event as a core writes it; `t<n>` timestamps tell events apart."""
    value: dict[str, Any] = {"type": kind, "job_id": job_id, "timestamp": f"t{n:06d}", **extra}
    if kind == "agent_message_received":
        value["agent_id"] = "b"
        value["payload"] = {"from": "a", "to": "b", "type": "task", "message_id": str(n)}
    return orjson.dumps(value)


def document(value: Any) -> JsonDocument:
    return JsonDocument(orjson.dumps(value), orjson.loads, value)


class ScriptedCore(RuntimePort):
    """A core whose jobs are dictionaries. `calls` lists every operation as it came;
    `opened`/`most_open` count StreamEvents calls; a following stream fails after
    `break_after` events when that is set."""

    def __init__(self, *, cancel_all: bool = True, nodes: Sequence[str] = ("mn1@host",)) -> None:
        self.statuses: dict[str, str] = {}
        self.histories: dict[str, list[bytes]] = {}
        self.submitted: dict[str, tuple[str, dict[str, bytes]]] = {}
        self.nodes = list(nodes)
        self.calls: list[tuple[str, ...]] = []
        self.opened = 0
        self.open_now = 0
        self.most_open = 0
        self.break_after: int | None = None
        self._cancel_all = cancel_all
        self._refusals: dict[tuple[str, str], DomainError] = {}
        self._grew: dict[str, asyncio.Event] = {}
        self._ids = itertools.count(1)

    # Setting the scene.

    def add(self, job_id: str, events: int = 0, *, final: bool = True, status: str = "") -> None:
        """A job with `events` messages, ended by `job_completed` when `final`."""
        self.histories[job_id] = [event(job_id, n) for n in range(events)]
        if final:
            self.histories[job_id].append(event(job_id, events, "job_completed"))
        self.statuses[job_id] = status or ("completed" if final else "running")

    def emit(self, job_id: str, kind: str = "agent_message_received", **extra: Any) -> None:
        history = self.histories[job_id]
        history.append(event(job_id, len(history), kind, **extra))
        if kind == "job_completed":
            self.statuses[job_id] = "completed"
        self._grew.setdefault(job_id, asyncio.Event()).set()
        self._grew[job_id] = asyncio.Event()

    def refuse(self, operation: str, job_id: str, error: DomainError) -> None:
        """The next `operation` on `job_id` raises `error`, as the core's refusal reads."""
        self._refusals[(operation, job_id)] = error

    def _call(self, operation: str, *args: str) -> None:
        self.calls.append((operation, *args))
        refusal = self._refusals.pop((operation, args[0] if args else ""), None)
        if refusal is not None:
            raise refusal

    def _job(self, job_id: str) -> str:
        status = self.statuses.get(job_id)
        if status is None:
            raise JobNotFoundError(job_id)
        return status

    # The port.

    async def submit_job(self, manifest_json: str, payloads: Mapping[str, bytes]) -> JobAck:
        self._call("submit_job")
        job_id = f"job-{next(self._ids)}"
        self.submitted[job_id] = (manifest_json, dict(payloads))
        self.add(job_id, final=False, status="pending")
        return JobAck(job_id, "pending")

    async def get_job(self, job_id: str) -> JsonDocument:
        self._call("get_job", job_id)
        status = self._job(job_id)
        # As a 1.2.31 core answers: its recent events are left for the gateway to fill.
        details = {"job": {"job_id": job_id, "status": status}, "agents": [], "recent_events": []}
        return document(details)

    async def list_jobs(self, limit: int, include_terminal: bool) -> JsonDocument:
        self._call("list_jobs")
        jobs = [
            {"job_id": job_id, "status": status}
            for job_id, status in reversed(self.statuses.items())
            if include_terminal or not is_terminal(status)
        ]
        return document({"data": jobs[: limit or 100]})

    async def _move(self, operation: str, job_id: str, allowed: set[str], to: str) -> JobAck:
        self._call(operation, job_id)
        status = self._job(job_id)
        if status not in allowed:
            state = "already terminal" if is_terminal(status) else status
            raise InvalidTransitionError(f"job {job_id} is {state}: no {operation}")
        self.statuses[job_id] = to
        return JobAck(job_id, to)

    async def cancel_job(self, job_id: str) -> JobAck:
        return await self._move("cancel_job", job_id, {"pending", "running", "paused"}, "cancelled")

    async def pause_job(self, job_id: str) -> JobAck:
        return await self._move("pause_job", job_id, {"running"}, "paused")

    async def resume_job(self, job_id: str) -> JobAck:
        return await self._move("resume_job", job_id, {"paused"}, "running")

    async def clear_jobs(self) -> int:
        self._call("clear_jobs")
        ended = [job_id for job_id, status in self.statuses.items() if is_terminal(status)]
        for job_id in ended:
            del self.statuses[job_id]
            self.histories.pop(job_id, None)
        return len(ended)

    async def cancel_all_jobs(self) -> JsonDocument:
        self._call("cancel_all_jobs")
        if not self._cancel_all:
            raise NotSupportedError("this core has no CancelAllJobs")
        live = [job_id for job_id, status in self.statuses.items() if not is_terminal(status)]
        for job_id in live:
            self.statuses[job_id] = "cancelled"
        return document({"cancelled_count": len(live), "job_ids": live})

    async def replay_dead_letter(self, job_id: str, event_index: int) -> ReplayAck:
        self._call("replay_dead_letter", job_id, str(event_index))
        letter = orjson.loads(self.histories[job_id][event_index])
        self.statuses[job_id] = "running"
        return ReplayAck(job_id, "running", letter.get("agent_id", ""))

    async def remove_node(self, node_name: str) -> str:
        self._call("remove_node", node_name)
        if node_name not in self.nodes:
            raise NodeNotFoundError(node_name)
        self.nodes.remove(node_name)
        return f"removed {node_name}"

    async def system_summary(self) -> JsonDocument:
        self._call("system_summary")
        jobs = [{"job_id": j, "status": s} for j, s in self.statuses.items()]
        # The core marks the node it runs on with `self?`, the first one here.
        nodes = [
            {"name": name, "self?": n == 0, "executor_pools": {"default": {"capacity": 2}}}
            for n, name in enumerate(self.nodes)
        ]
        return document({"nodes": nodes, "jobs": jobs})

    async def ping(self, deadline_seconds: float) -> None:
        self._call("ping")

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
                if not follow or is_terminal(self.statuses.get(job_id, "completed")):
                    return
                grew = self._grew.setdefault(job_id, asyncio.Event())
                try:
                    async with asyncio.timeout(heartbeat_seconds):
                        await grew.wait()
                except TimeoutError:
                    yield Heartbeat()
        finally:
            self.open_now -= 1


class KeptTopologies(TopologyStore):
    """Topologies in a dictionary; `down` makes every call fail as an unreachable store."""

    def __init__(self) -> None:
        self.kept: dict[str, Mapping[str, Any]] = {}
        self.loads = 0
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise SharedStateUnavailableError("the topology store does not answer")

    async def save(self, job_id: str, manifest_json: str) -> None:
        self._check()
        manifest = orjson.loads(manifest_json)
        self.kept[job_id] = {k: manifest.get(k, []) for k in ("nodes", "edges", "entrypoints")}

    async def save_many(self, topologies: Sequence[tuple[str, bytes]]) -> None:
        self._check()
        for job_id, text in topologies:
            self.kept[job_id] = orjson.loads(text)

    async def load(self, job_id: str) -> Mapping[str, Any] | None:
        self.loads += 1
        self._check()
        return self.kept.get(job_id)

    async def forget(self, job_id: str) -> None:
        self._check()
        self.kept.pop(job_id, None)

    async def purge(self) -> int:
        return 0


class ManifestFiles(ManifestSource):
    """Manifest files by path; any other path is unreadable here."""

    def __init__(self, files: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.files = dict(files or {})
        self.read_paths: list[str] = []

    async def read(self, path: str) -> Mapping[str, Any] | None:
        self.read_paths.append(path)
        return self.files.get(path)


class KeptBundles(BundleStore):
    """Bundles already unpacked, by id; uploads are not what these tests are about."""

    def __init__(self, bundles: Mapping[str, BundleContents] | None = None) -> None:
        self.bundles = dict(bundles or {})

    async def save(self, archive: BinaryIO) -> StoredBundle:
        raise AssertionError("the use cases tested here never upload")

    async def load(self, bundle_id: str) -> BundleContents:
        contents = self.bundles.get(bundle_id)
        if contents is None:
            raise BundleNotFoundError(bundle_id)
        # A fresh copy each time, as a store reading its files would give.
        return BundleContents(contents.manifest_json, dict(contents.payloads))

    async def purge(self) -> int:
        return 0


class Catalogue(BlueprintSource):
    """Blueprints by id and folders by path, held in memory."""

    def __init__(
        self,
        blueprints: Mapping[str, tuple[Blueprint, BundleContents]] | None = None,
        folders: Mapping[str, BundleContents | BinaryIO] | None = None,
    ) -> None:
        self.blueprints = dict(blueprints or {})
        self.folders = dict(folders or {})

    async def catalog(self) -> list[Blueprint]:
        return [blueprint for blueprint, _ in self.blueprints.values()]

    async def blueprint(self, blueprint_id: str) -> tuple[Blueprint, BundleContents]:
        if blueprint_id not in self.blueprints:
            raise BlueprintNotFoundError(blueprint_id)
        return self.blueprints[blueprint_id]

    async def at_path(self, path: str) -> BundleContents | BinaryIO:
        if path not in self.folders:
            raise BlueprintNotFoundError(path)
        return self.folders[path]
