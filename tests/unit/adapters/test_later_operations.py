"""The simulated OperationsService (1.2.31): starting operations, their documents and
counters, their numbered events, and the items acting on the runtime's jobs."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.adapters.memory.services import CoreRefusal
from mn_api.adapters.memory.services._base import OPERATIONS
from mn_api.adapters.memory.services.operation_documents import counters_of
from mn_api.domain.errors import JobNotFoundError
from tests.support import FakeClock, pipeline_manifest

MN1, MN2 = "mn1@127.0.0.1", "mn2@127.0.0.1"


def daemon(job_type: str | None = None, recovery: str | None = None) -> dict[str, Any]:
    policies: dict[str, Any] = {}
    if job_type:
        policies["job_type"] = job_type
    if recovery:
        policies["recovery_mode"] = recovery
    return {**pipeline_manifest(), "daemon": True, "policies": policies}


@pytest.fixture
def runtime(clock: FakeClock) -> InMemoryRuntime:
    return InMemoryRuntime(auto_run=False, clock=clock, nodes=2)


async def submit(runtime: InMemoryRuntime, manifest: dict[str, Any] | None = None) -> str:
    manifest = manifest or pipeline_manifest()
    return (await runtime.submit_job(orjson.dumps(manifest).decode(), {})).job_id


async def start(runtime: InMemoryRuntime, kind: str, options: Any = None) -> dict[str, Any]:
    text = options if isinstance(options, str) else orjson.dumps(options or {}).decode()
    answer = await runtime.services.call(
        OPERATIONS + "StartOperation", {"kind": kind, "options_json": text}
    )
    assert answer["version"] == 1
    return orjson.loads(answer["operation_json"])


async def get(runtime: InMemoryRuntime, operation_id: str) -> dict[str, Any]:
    answer = await runtime.services.call(
        OPERATIONS + "GetOperation", {"operation_id": operation_id}
    )
    return orjson.loads(answer["operation_json"])


async def events(runtime: InMemoryRuntime, operation_id: str, **request: Any) -> list[dict]:
    stream = runtime.services.stream(
        OPERATIONS + "StreamOperationEvents", {"operation_id": operation_id, **request}
    )
    return [orjson.loads(answer["event_json"]) async for answer in stream]


async def finished(runtime: InMemoryRuntime, operation_id: str) -> dict[str, Any]:
    return await runtime.services.group("operations").wait(operation_id)


async def test_cancel_all_jobs_cancels_every_live_job_and_tells_it_event_by_event(
    runtime: InMemoryRuntime,
) -> None:
    live = [await submit(runtime) for _ in range(3)]
    done = await submit(runtime)
    await runtime.cancel_job(done)
    created = await start(runtime, "cancel_all_jobs", "not json at all")
    assert created["status"] == "pending" and "items" not in created
    assert created["operation_id"].startswith("op-") and len(created["operation_id"]) == 19
    assert created["target_count"] == 3 and created["started_at"] is None
    assert created["counters"] == {**counters_of([], 3)} and created["counters"]["total"] == 3
    assert sorted(t["job_id"] for t in created["targets"]) == sorted(live)
    document = await finished(runtime, created["operation_id"])
    assert document["status"] == "completed" and document["completed_at"]
    assert document["counters"] == {
        "total": 3,
        "started": 3,
        "finished": 3,
        "succeeded": 3,
        "failed": 0,
        "deferred": 0,
        "skipped": 0,
    }
    assert {i["status"] for i in document["items"].values()} == {"cancelled"}
    for job_id in live:
        assert (await runtime.get_job(job_id)).value["job"]["status"] == "cancelled"
    told = await events(runtime, created["operation_id"])
    assert [e["sequence"] for e in told] == list(range(1, 10))
    assert [e["type"] for e in told[:2]] == ["operation_created", "operation_started"]
    assert [e["type"] for e in told[2:8]].count("item_completed") == 3
    assert told[-1]["type"] == "operation_completed" and told[-1]["status"] == "completed"
    assert all(e["operation_id"] == created["operation_id"] and "version" not in e for e in told)
    # Read again after a sequence: only what follows it.
    assert [
        e["sequence"] for e in await events(runtime, created["operation_id"], after_sequence=7)
    ] == [
        8,
        9,
    ]
    got = await get(runtime, created["operation_id"])
    assert got["version"] == 1 and got["counters"]["succeeded"] == 3 and len(got["items"]) == 3


async def test_an_operation_without_targets_is_created_started_and_completed(
    runtime: InMemoryRuntime,
) -> None:
    created = await start(runtime, "clear_jobs")
    await finished(runtime, created["operation_id"])
    told = await events(runtime, created["operation_id"], after_sequence=-5)
    assert [(e["sequence"], e["type"]) for e in told] == [
        (1, "operation_created"),
        (2, "operation_started"),
        (3, "operation_completed"),
    ]
    assert told[2]["counters"]["total"] == 0 and told[2]["status"] == "completed"


async def test_clear_jobs_removes_the_finished_jobs_only(runtime: InMemoryRuntime) -> None:
    done = [await submit(runtime) for _ in range(2)]
    for job_id in done:
        await runtime.cancel_job(job_id)
    live = await submit(runtime, daemon())
    assert await runtime.clear_jobs() == 2
    for job_id in done:
        with pytest.raises(JobNotFoundError):
            await runtime.get_job(job_id)
    assert (await runtime.get_job(live)).value["job"]["status"] == "pending"
    assert await runtime.clear_jobs() == 0


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        ("defrag", {}, 'unsupported operation kind "defrag"'),
        ("drain_node", {}, "node_name is required"),
        ("reconcile_node", {"node_name": "  "}, "node_name is required"),
    ],
)
async def test_refusals_are_the_cores(
    runtime: InMemoryRuntime, kind: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(CoreRefusal) as refused:
        await start(runtime, kind, options)
    assert (refused.value.code, refused.value.message) == ("INVALID_ARGUMENT", message)


async def test_an_unknown_operation_is_not_found_quoted(runtime: InMemoryRuntime) -> None:
    for call in (get(runtime, "op-missing"), events(runtime, "op-missing", follow=True)):
        with pytest.raises(CoreRefusal) as refused:
            await call
        assert refused.value.code == "NOT_FOUND"
        assert refused.value.message == '"operation op-missing was not found"'


async def test_options_are_read_as_the_core_reads_them(runtime: InMemoryRuntime) -> None:
    options = {
        "node": MN2,
        "reason": "kernel",
        "dry_run": True,
        "deadline_ms": -4,
        "ignore_system_jobs": None,
        "extra": 1,
    }
    created = await start(runtime, "drain_node", options)
    assert created["node_name"] == MN2 and created["reason"] == "kernel"
    assert created["dry_run"] is True
    assert not {"deadline_ms", "ignore_system_jobs", "extra", "node"} & set(created)


def test_counters_count_as_the_core_does() -> None:
    statuses = ["running", "failed", "cancellation_pending", "waiting", "ignored", "cleared"]
    assert counters_of(statuses, 9) == {
        "total": 9,
        "started": 6,
        "finished": 6,  # running items too
        "succeeded": 2,  # running counts as succeeded
        "failed": 1,
        "deferred": 2,
        "skipped": 1,
    }


async def test_a_cancel_that_queues_clean_up_is_deferred_and_not_waited_for(
    runtime: InMemoryRuntime,
) -> None:
    # A message still on its way when the cancel comes: the clean-up is queued.
    slow = {**pipeline_manifest(worker={"simulate": {"delay_ms": 60_000}}), "daemon": True}
    job_id = await submit(runtime, slow)
    for _ in range(3):
        runtime.step()
    result = (await runtime.cancel_all_jobs()).value
    assert result["results"] == [
        {
            "message": "cleanup queued on owner node",
            "job_id": job_id,
            "status": "cancellation_pending",
        }
    ]
    assert result["pending_count"] == result["cancelled_count"] == 1
    assert result["failed_count"] == 0
    document = await get(runtime, result["operation_id"])
    assert document["status"] == "completed" and document["counters"]["deferred"] == 1
    told = await events(runtime, result["operation_id"])
    assert [e["type"] for e in told][3] == "item_deferred"


async def test_following_waits_for_new_events_and_beats_while_quiet(
    runtime: InMemoryRuntime, clock: FakeClock
) -> None:
    job_id = await submit(runtime, daemon())
    node = runtime._jobs[job_id].agents["worker"].node
    # A batch job may finish before the drain's deadline: the operation waits.
    created = await start(runtime, "drain_node", {"node_name": node, "deadline_ms": 60_000})
    operations = runtime.services.group("operations")
    document = await operations.wait(created["operation_id"], settled=True)
    assert document["status"] == "waiting" and document["completed_at"] is None
    assert document["counters"]["deferred"] == 1
    seen: list[dict[str, Any]] = []
    beating = asyncio.Event()

    async def follow() -> None:
        stream = runtime.services.stream(
            OPERATIONS + "StreamOperationEvents",
            {
                "operation_id": created["operation_id"],
                "after_sequence": 2,
                "follow": True,
                "heartbeat_interval_ms": 20,
            },
        )
        async for answer in stream:
            seen.append(orjson.loads(answer["event_json"]))
            if seen[-1]["type"] == "stream_heartbeat":
                beating.set()

    follower = asyncio.create_task(follow())
    await asyncio.wait_for(beating.wait(), 5)
    assert [e["type"] for e in seen[:3]] == ["item_started", "item_deferred", "operation_deferred"]
    beat = next(e for e in seen if e["type"] == "stream_heartbeat")
    assert set(beat) == {"type", "operation_id", "timestamp"}
    clock.advance(61)  # the deadline passes: the recovery pass drains the job
    await runtime.services.group("operations").recover()
    await asyncio.wait_for(follower, 5)
    numbered = [e for e in seen if "sequence" in e]
    assert [e["sequence"] for e in numbered] == list(range(3, 3 + len(numbered)))
    assert numbered[-1]["type"] == "operation_completed"
    assert numbered[-2]["status"] == "paused_for_review"
    assert (await runtime.get_job(job_id)).value["job"]["status"] == "paused"
