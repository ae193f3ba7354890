"""OperationsService (1.2.31): long work over many jobs or a node, as a record with
counters and a numbered stream of events, run item by item in the background.

Kinds, with the items they run at once: cancel_all_jobs (8), clear_jobs (8),
reconcile_node (2) and drain_node (2). The targets are taken once, when the operation
starts; the items really act on the runtime's jobs (cancel, clear) or go through the
node administration group (reconcile, drain). An operation with deferred items waits
(`waiting`) and runs them again every RECOVERY_SECONDS, as the core's recovery loop does.
docs/LATER_SERVICES.md says where each behaviour comes from.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from mn_api.adapters.memory.services._base import (
    OPERATIONS,
    Answer,
    CoreRefusal,
    Request,
    Streaming,
    Unary,
    dumps,
    invalid,
    iso_now,
    lenient_object,
    new_id,
    not_found,
    quoted,
    versioned,
)
from mn_api.adapters.memory.services.operation_documents import (
    OPTION_KEYS,
    cancel_all_result,
    cleared_count,
    counters_of,
    option_attrs,
)
from mn_api.domain.errors import DomainError, JobNotFoundError

if TYPE_CHECKING:
    from mn_api.adapters.memory.runtime import InMemoryRuntime

# Each kind and how many of its items run at once.
KINDS = {"cancel_all_jobs": 8, "clear_jobs": 8, "reconcile_node": 2, "drain_node": 2}
NODE_KINDS = ("reconcile_node", "drain_node")
TERMINAL = frozenset({"completed", "completed_with_failures", "failed"})
# The statuses of the jobs each kind takes as targets.
CANCEL_TARGETS = frozenset({"pending", "validated", "scheduled", "running", "paused", "cancelling"})
CLEAR_TARGETS = frozenset({"completed", "failed", "cancelled"})
# Item statuses reported as deferred (item_deferred).
DEFERRED_EVENTS = frozenset({"deferred", "cancellation_pending"})
# How often a waiting operation's deferred items run again (the core's recovery loop).
RECOVERY_SECONDS = 5.0
# How long CancelAllJobs, ClearJobs, ReconcileNode and DrainNode wait for their operation.
WAIT_SECONDS = 30.0
# The operations kept (the oldest finished ones go first), and the events of each: an
# operation that has recorded this many is no longer run again.
MAX_OPERATIONS = 1000
MAX_EVENTS = 10_000
LIST_ALL = 2_147_483_647

# What an item's action answers: its status, its result and its error.
Outcome = tuple[str, dict[str, Any], str | None]


@dataclass
class _Operation:
    record: dict[str, Any]
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    running: bool = False

    @property
    def status(self) -> str:
        return str(self.record["status"])

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


class Operations:
    name: ClassVar[str] = "operations"

    def __init__(self, runtime: InMemoryRuntime) -> None:
        self._runtime = runtime
        self._operations: dict[str, _Operation] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def unary(self) -> Mapping[str, Unary]:
        return {
            OPERATIONS + "StartOperation": self._start_operation,
            OPERATIONS + "GetOperation": self._get_operation,
        }

    def streaming(self) -> Mapping[str, Streaming]:
        return {OPERATIONS + "StreamOperationEvents": self._stream_events}

    def reset(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        self._operations.clear()

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- the RPCs ----------------------------------------------------------------------------

    async def _start_operation(self, request: Request) -> Answer:
        options = lenient_object(request.get("options_json", ""))
        document = await self.start(str(request.get("kind", "")), options)
        return {"operation_json": dumps(versioned(document)), "version": 1}

    async def _get_operation(self, request: Request) -> Answer:
        operation = self._find(str(request.get("operation_id", "")))
        return {"operation_json": dumps(versioned(self.document(operation))), "version": 1}

    async def _stream_events(self, request: Request) -> AsyncIterator[Answer]:
        operation = self._find(str(request.get("operation_id", "")))
        after = max(int(request.get("after_sequence", 0) or 0), 0)
        follow = bool(request.get("follow", False))
        heartbeat_ms = max(int(request.get("heartbeat_interval_ms", 0) or 0), 0)
        async for event in self.events(operation, after, follow, heartbeat_ms / 1000):
            yield {"event_json": dumps(event), "version": 1}

    # -- what other groups and the runtime use -------------------------------------------------

    async def start(self, kind: str, options: Mapping[str, Any]) -> dict[str, Any]:
        """Start an operation of `kind` (its options as the core reads them) and answer its
        document as created; CoreRefusal INVALID_ARGUMENT for an unknown kind, or a node
        kind without a node."""
        if kind not in KINDS:
            raise invalid(f"unsupported operation kind {quoted(kind)}")
        attrs = option_attrs(options)
        targets = await self._targets(kind, attrs)
        now = self._now()
        record: dict[str, Any] = {
            "operation_id": new_id("op-", 16),
            "kind": kind,
            "status": "pending",
            "targets": targets,
            "target_count": len(targets),
            "counters": counters_of([], len(targets)),
            "created_at": now,
            "updated_at": now,
            "started_at": None,
            "completed_at": None,
            "errors": [],
            **attrs,
        }
        operation = _Operation(record)
        self._keep(operation)
        self._append(operation, {"type": "operation_created"})
        self._launch(operation)
        return dict(record)

    def document(self, operation: _Operation | str, *, items: bool = True) -> dict[str, Any]:
        """The operation as GetOperation answers it: counters worked out from its items."""
        if isinstance(operation, str):
            operation = self._find(operation)
        document = dict(operation.record)
        statuses = [item["status"] for item in operation.items.values()]
        document["counters"] = counters_of(statuses, int(document["target_count"]))
        if items:
            document["items"] = {key: dict(item) for key, item in operation.items.items()}
        return document

    async def wait(self, operation_id: str, *, settled: bool = False) -> dict[str, Any]:
        """The operation's document once it has ended (or, `settled`, once every item has
        run and none is running), or as it is after WAIT_SECONDS."""
        operation = self._find(operation_id)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(WAIT_SECONDS):
                while not (operation.terminal or (settled and _settled(operation))):
                    await operation.changed.wait()
        return self.document(operation)

    async def cancel_all(self) -> dict[str, Any]:
        """JobService.CancelAllJobs on operations: the result once every live job's cancel
        has been answered (or after WAIT_SECONDS)."""
        created = await self.start("cancel_all_jobs", {})
        return cancel_all_result(await self.wait(created["operation_id"]))

    async def clear_all(self) -> int:
        """JobService.ClearJobs on operations: how many finished jobs were cleared."""
        created = await self.start("clear_jobs", {})
        return cleared_count(await self.wait(created["operation_id"]))

    async def recover(self) -> None:
        """Run every operation that has not ended again (its deferred items), as the core's
        recovery loop does; operations being run are left alone."""
        for operation in list(self._operations.values()):
            if not operation.terminal and not operation.running:
                await self._run(operation)

    def events(
        self, operation: _Operation, after: int, follow: bool, heartbeat_seconds: float
    ) -> AsyncIterator[dict[str, Any]]:
        return self._follow(operation, after, follow, heartbeat_seconds)

    # -- the runner ----------------------------------------------------------------------------

    def _launch(self, operation: _Operation) -> None:
        task = asyncio.create_task(self._run(operation), name="mn-memory-operation")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, operation: _Operation) -> None:
        if operation.running or operation.terminal:
            return
        operation.running = True
        try:
            if operation.status == "pending":
                operation.record.update(status="running", started_at=self._now())
                self._touch(operation)
                self._append(operation, {"type": "operation_started"})
            gate = asyncio.Semaphore(KINDS[operation.record["kind"]])
            pending = [t for t in operation.record["targets"] if _pending(operation, t)]
            await asyncio.gather(*(self._run_item(operation, t, gate) for t in pending))
            self._finalize(operation)
        finally:
            operation.running = False
        if operation.status == "waiting" and self._runtime._auto_run:
            task = asyncio.create_task(self._again(operation), name="mn-memory-recovery")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _again(self, operation: _Operation) -> None:
        await asyncio.sleep(RECOVERY_SECONDS)
        if len(operation.events) < MAX_EVENTS:
            await self._run(operation)

    async def _run_item(
        self, operation: _Operation, target: dict[str, Any], gate: asyncio.Semaphore
    ) -> None:
        async with gate:
            item_id = str(target["id"])
            operation.items[item_id] = {
                "item_id": item_id,
                "target": target,
                "status": "running",
                "started_at": self._now(),
                "completed_at": None,
                "result": None,
                "error": None,
            }
            self._append(operation, {"type": "item_started", "item_id": item_id, "target": target})
            try:
                status, result, error = await self._execute(operation, target)
            except DomainError as failure:
                status, result, error = "failed", {}, failure.detail
            except CoreRefusal as refused:
                status, result, error = "failed", {}, refused.message
            now = self._now()
            # The core writes the finish time as the item's start too.
            operation.items[item_id] = {
                "item_id": item_id,
                "target": target,
                "status": status,
                "started_at": now,
                "completed_at": now,
                "result": result,
                "error": error,
            }
            kind = "item_deferred" if status in DEFERRED_EVENTS else "item_completed"
            self._append(
                operation,
                {
                    "type": kind,
                    "item_id": item_id,
                    "status": status,
                    "result": result,
                    "error": error,
                },
            )
            await asyncio.sleep(0)  # the other items and the loop's callers get their turn

    async def _execute(self, operation: _Operation, target: Mapping[str, Any]) -> Outcome:
        kind = operation.record["kind"]
        job_id = str(target["job_id"])
        if kind == "cancel_all_jobs":
            return await self._cancel(job_id)
        if kind == "clear_jobs":
            return self._clear(job_id)
        nodes = self._runtime.services.group("nodes")
        options = {k: operation.record[k] for k in OPTION_KEYS if k in operation.record}
        if kind == "reconcile_node":
            return nodes.reconcile_item(job_id, str(target["node_name"]), options)  # type: ignore[no-any-return]
        return nodes.drain_item(job_id, str(target["node_name"]), options)  # type: ignore[no-any-return]

    async def _cancel(self, job_id: str) -> Outcome:
        try:
            ack = await self._runtime.cancel_job(job_id)
        except JobNotFoundError:
            return "failed", {}, f"job {job_id} was not found"
        if ack.status == "cancellation_pending":
            return "cancellation_pending", {"message": "cleanup queued on owner node"}, None
        return ack.status, {}, None

    def _clear(self, job_id: str) -> Outcome:
        try:
            self._runtime.clear_job(job_id)
        except JobNotFoundError:
            return "failed", {}, f"job {job_id} was not found"
        return "cleared", {}, None

    def _finalize(self, operation: _Operation) -> None:
        statuses = [item["status"] for item in operation.items.values()]
        counters = counters_of(statuses, int(operation.record["target_count"]))
        if "deferred" in statuses:
            status = "waiting"
        elif counters["failed"] > 0:
            status = "completed_with_failures"
        else:
            status = "completed"
        operation.record.update(status=status, counters=counters)
        if status != "waiting":
            operation.record["completed_at"] = self._now()
        self._touch(operation)
        kind = "operation_deferred" if status == "waiting" else "operation_completed"
        self._append(operation, {"type": kind, "status": status, "counters": counters})

    # -- targets, records and events -------------------------------------------------------------

    async def _targets(self, kind: str, attrs: Mapping[str, Any]) -> list[dict[str, Any]]:
        if kind in NODE_KINDS:
            node = attrs.get("node_name")
            if not isinstance(node, str) or not node.strip():
                raise invalid("node_name is required")
            nodes = self._runtime.services.group("nodes")
            return [
                {"id": job_id, "job_id": job_id, "node_name": node}
                for job_id in nodes.jobs_on(node)
            ]
        wanted = CANCEL_TARGETS if kind == "cancel_all_jobs" else CLEAR_TARGETS
        listing = (await self._runtime.list_jobs(LIST_ALL, kind == "clear_jobs")).value
        return [
            {"id": job["job_id"], "job_id": job["job_id"]}
            for job in listing.get("data", [])
            if job.get("status") in wanted
        ]

    def _find(self, operation_id: str) -> _Operation:
        operation = self._operations.get(operation_id)
        if operation is None:
            raise not_found(quoted(f"operation {operation_id} was not found"))
        return operation

    def _keep(self, operation: _Operation) -> None:
        self._operations[operation.record["operation_id"]] = operation
        if len(self._operations) > MAX_OPERATIONS:
            for key, kept in list(self._operations.items()):
                if kept.terminal:
                    del self._operations[key]
                    break

    def _now(self) -> str:
        return iso_now(self._runtime._clock)

    def _touch(self, operation: _Operation) -> None:
        operation.record["updated_at"] = self._now()

    def _append(self, operation: _Operation, event: dict[str, Any]) -> None:
        event.update(
            operation_id=operation.record["operation_id"], sequence=len(operation.events) + 1
        )
        event.setdefault("timestamp", self._now())
        operation.events.append(event)
        changed, operation.changed = operation.changed, asyncio.Event()
        changed.set()

    async def _follow(
        self, operation: _Operation, after: int, follow: bool, heartbeat_seconds: float
    ) -> AsyncIterator[dict[str, Any]]:
        """The stored events after `after`; then, following an operation that has not
        ended, each new one as it comes and a heartbeat every `heartbeat_seconds`."""
        sent = after
        while sent < len(operation.events):
            sent += 1
            yield operation.events[sent - 1]
        if not follow or operation.terminal:
            return
        heartbeat_at = asyncio.get_running_loop().time()
        clock: Callable[[], float] = asyncio.get_running_loop().time
        while not operation.terminal:
            changed = operation.changed
            if len(operation.events) <= sent:
                wait = None
                if heartbeat_seconds > 0:
                    wait = max(heartbeat_at + heartbeat_seconds - clock(), 0)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await changed.wait()
            # Each event once, those appended while one was being sent included.
            while sent < len(operation.events):
                sent += 1
                yield operation.events[sent - 1]
            if operation.terminal:
                return
            if heartbeat_seconds > 0 and clock() - heartbeat_at >= heartbeat_seconds:
                heartbeat_at = clock()
                yield {
                    "type": "stream_heartbeat",
                    "operation_id": operation.record["operation_id"],
                    "timestamp": self._now(),
                }


def _pending(operation: _Operation, target: Mapping[str, Any]) -> bool:
    item = operation.items.get(str(target["id"]))
    return item is None or item["status"] in ("running", "deferred")


def _settled(operation: _Operation) -> bool:
    """Every item has run and none is running, and the run has said how it ended."""
    statuses = [item["status"] for item in operation.items.values()]
    done = len(statuses) >= int(operation.record["target_count"]) and "running" not in statuses
    return done and not operation.running
