"""The simulated core's schedules and trigger events (JobService, 1.2.5 and newer)."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.adapters.memory.services import CoreRefusal, schedule_dispatch
from mn_api.adapters.memory.services import schedule_policy as policy
from tests.support import FakeClock, pipeline_manifest
from tests.support.simulated_core import job_call as call
from tests.support.simulated_core import job_refusal as refusal

JOB = "/mirrorneuron.job.v1.JobService/"
START = datetime.fromtimestamp(1_764_000_000, UTC)  # FakeClock's epoch: 16:00:00


@pytest.fixture
def runtime(clock: FakeClock) -> InMemoryRuntime:
    return InMemoryRuntime(auto_run=False, clock=clock, release="1.2.31")


async def create(runtime: InMemoryRuntime, spec: Any, **manifest: Any) -> dict[str, Any]:
    return await call(
        runtime,
        "CreateSchedule",
        manifest_json=json.dumps({**pipeline_manifest(), **manifest}),
        payloads={"in/a.txt": b"a"},
        schedule_json=json.dumps(spec),
        source_json='{"cli": "schedule create"}',
    )


def schedules(runtime: InMemoryRuntime) -> Any:
    return runtime.services.group("schedules")


async def test_a_periodic_schedule_as_the_core_keeps_it(runtime: InMemoryRuntime) -> None:
    record = await create(
        runtime, {"version": 1, "cron": "*/15 * * * *", "timezone": "Europe/Paris"}
    )
    assert re.fullmatch(r"sched_[A-Za-z0-9_-]{11}", record["schedule_id"])
    assert record["kind"] == "periodic" and record["status"] == "active"
    assert record["enabled"] is True and record["crons"] == ["*/15 * * * *"]
    # Stored but not used: crons are evaluated in UTC.
    assert record["timezone"] == "Europe/Paris"
    assert record["next_run_at"] == "2025-11-24T16:15:00Z"
    assert record["name"] == "three steps"  # the manifest's job_name
    assert record["window"] == {"end_action": "cancel"}
    assert record["trigger"] == {"payload": "optional"}
    assert record["missed_policy"] == "skip" and record["catchup_limit"] == 10
    assert record["missed_grace_ms"] == 60000 and record["prohibit_overlap"] is True
    assert record["counters"] == {"dispatched": 0, "missed": 0, "failed": 0}
    assert record["dispatches"] == [] and record["active_job_ids"] == []
    assert record["source"] == {"cli": "schedule create"}
    assert record["manifest"]["graph_id"] == "pipeline"
    assert record["bundle_ref"]["graph_id"] == "pipeline"
    assert record["version"] == 1 and "run_at" not in record
    assert await call(runtime, "GetSchedule", schedule_id=record["schedule_id"]) == record


@pytest.mark.parametrize(
    ("cron", "after", "expected"),
    [
        ("* * * * *", "16:00:00", "2025-11-24T16:01:00Z"),
        ("* * * * *", "16:00:59.900", "2025-11-24T16:01:00Z"),
        ("0 9-17/4 * * *", "16:00:00", "2025-11-24T17:00:00Z"),
        ("5,35 * * * *", "16:10:00", "2025-11-24T16:35:00Z"),
        ("5/10 * * * *", "16:10:00", "2025-11-24T17:05:00Z"),  # minute 5 alone
        ("0 0 * * 7", "16:00:00", "2025-11-30T00:00:00Z"),  # 7 is Sunday
        ("0 0 1 * 1", "16:00:00", "2025-12-01T00:00:00Z"),  # day 1 or a Monday
        ("0 0 28 * 4", "16:00:00", "2025-11-27T00:00:00Z"),  # Thursday before the 28th
        ("@hourly", "16:00:00", "2025-11-24T17:00:00Z"),
        ("@daily", "16:00:00", "2025-11-25T00:00:00Z"),
        ("@weekly", "16:00:00", "2025-11-30T00:00:00Z"),
        ("@monthly", "16:00:00", "2025-12-01T00:00:00Z"),
        ("@annually", "16:00:00", "2026-01-01T00:00:00Z"),
        ("0 0 30 2 *", "16:00:00", None),  # never
    ],
)
def test_cron_occurrences_in_utc(cron: str, after: str, expected: str | None) -> None:
    moment = datetime.fromisoformat(f"2025-11-24T{after}+00:00")
    assert policy.next_run_at({"kind": "periodic", "crons": [cron]}, moment) == expected


@pytest.mark.parametrize(
    "cron",
    ["60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *", "* * * * 8", "*/0 * * * *",
     "5-1 * * * *", "1- * * * *", "MON * * * *", "L * * * *", "* * * *", "0 * * * * *",
     "@reboot", ""],
)  # fmt: skip
def test_what_the_core_calls_an_invalid_cron_expression(cron: str) -> None:
    assert policy.parse_cron(cron) is None


async def test_refusals_list_every_problem_in_the_cores_words(runtime: InMemoryRuntime) -> None:
    code, message = await refusal(
        runtime,
        "CreateSchedule",
        manifest_json=json.dumps(pipeline_manifest()),
        schedule_json='{"crons": ["bad", "61 * * * *"], "window": {"end_action": "later"}}',
    )
    assert code == "INVALID_ARGUMENT"
    assert (
        message
        == '["invalid cron expression \\"bad\\"", "invalid cron expression \\"61 * * * *\\""]'
    )
    for schedule, problem in [
        ({}, "periodic schedules require cron or crons"),
        ({"kind": "Interval"}, "schedule.kind must be periodic, delayed, event, or resource_wait"),
        ({"run_at": "2026-01-01T00:00:00"}, "delayed schedules require a valid run_at or delay_ms"),
        ({"trigger": {"event_type": "bad type"}}, "event schedules require trigger.event_type"),
    ]:
        code, message = await refusal(
            runtime,
            "CreateSchedule",
            manifest_json=json.dumps(pipeline_manifest()),
            schedule_json=json.dumps(schedule),
        )
        assert (code, message) == ("INVALID_ARGUMENT", f'["{problem}"]')
    code, message = await refusal(
        runtime, "CreateSchedule", manifest_json='{"graph_id": 1}', schedule_json="{}"
    )
    assert code == "INVALID_ARGUMENT" and message.startswith('["')
    code, message = await refusal(
        runtime,
        "CreateSchedule",
        manifest_json=json.dumps(pipeline_manifest()),
        payloads={"../x": b""},
        schedule_json='{"cron": "@daily"}',
    )
    assert message == '"payload path must be relative and stay inside payloads/: \\"../x\\""'


async def test_kinds_are_inferred_and_the_manifest_schedule_is_the_fallback(
    runtime: InMemoryRuntime,
) -> None:
    event = await create(runtime, {"event_type": "invoice.received"})
    assert event["kind"] == "event" and event["next_run_at"] is None
    assert event["trigger"] == {"event_type": "invoice.received", "payload": "optional"}
    delayed = await create(runtime, {"delay_ms": 90_000, "name": "once"})
    assert delayed["kind"] == "delayed" and delayed["name"] == "once"
    assert delayed["run_at"] == delayed["next_run_at"]
    assert delayed["run_at"].startswith("2025-11-24T16:01:30.")
    waiting = await create(runtime, {"auto_schedule": True, "enabled": "no"})
    assert waiting["kind"] == "resource_wait" and waiting["retry_interval_ms"] == 30000
    assert waiting["status"] == "paused" and waiting["enabled"] is False
    assert waiting["resource_availability"]["status"] == "available"
    fallback = await create(runtime, {}, schedule={"cron": "@hourly", "name": "from manifest"})
    assert fallback["crons"] == ["@hourly"] and fallback["name"] == "from manifest"
    code, message = await refusal(
        runtime,
        "CreateSchedule",
        manifest_json=json.dumps({**pipeline_manifest(), "requirements": {"gpu": 64}}),
        schedule_json='{"auto_schedule": true}',
    )
    assert code == "INVALID_ARGUMENT"
    assert "resource requirements cannot be satisfied by the current cluster" in message
    assert message.endswith('(not_runnable)"')


async def test_a_periodic_schedule_dispatches_when_due(
    runtime: InMemoryRuntime, clock: FakeClock
) -> None:
    record = await create(runtime, {"crons": ["* * * * *"], "name": "every minute"})
    assert (await schedules(runtime).tick())["dispatched"] == 0
    clock.advance(61)
    tally = await schedules(runtime).tick()
    assert tally == {
        "checked": 1, "dispatched": 1, "skipped": 0, "failed": 0, "missed": 0, "blocked": 0,
        "windows_closed": 0,
    }  # fmt: skip
    after = await call(runtime, "GetSchedule", schedule_id=record["schedule_id"])
    dispatch = after["dispatches"][0]
    job_id = dispatch["job_id"]
    assert dispatch["status"] == "submitted" and dispatch["reason"] == "periodic"
    assert dispatch["scheduled_for"] == "2025-11-24T16:01:00Z"
    assert re.fullmatch(r"dispatch_[A-Za-z0-9_-]{11}", dispatch["dispatch_id"])
    assert after["active_job_ids"] == [job_id] and after["counters"]["dispatched"] == 1
    # The core looks for the next occurrence a minute after the dispatch: 16:02 is passed.
    assert after["next_run_at"] == "2025-11-24T16:03:00Z"
    job = runtime._jobs[job_id]
    stamp = job.manifest.metadata["schedule_dispatch"]
    assert stamp["schedule_id"] == record["schedule_id"] and stamp["schedule_kind"] == "periodic"
    assert stamp["schedule_name"] == "every minute" and stamp["reason"] == "periodic"
    assert stamp["dispatch_id"] == dispatch["dispatch_id"] and "payload" not in stamp
    assert runtime.payload_keys(job_id) == ["in/a.txt"]
    # Due again while that job still runs: blocked (prohibit_overlap), nothing started.
    clock.advance(120)
    assert (await schedules(runtime).tick())["blocked"] == 1
    blocked = await call(runtime, "GetSchedule", schedule_id=record["schedule_id"])
    assert blocked["last_blocked_reason"] == "overlap" and len(blocked["dispatches"]) == 1
    runtime.run_until_idle()
    assert (await schedules(runtime).tick())["dispatched"] == 1
    again = await call(runtime, "GetSchedule", schedule_id=record["schedule_id"])
    assert again["active_job_ids"] == [again["dispatches"][0]["job_id"]]


async def test_missed_and_caught_up_occurrences(runtime: InMemoryRuntime, clock: FakeClock) -> None:
    skipping = await create(runtime, {"cron": "* * * * *"})
    catching = await create(
        runtime, {"cron": "* * * * *", "missed_policy": "catchup_all", "prohibit_overlap": False}
    )
    clock.advance(60 * 6 + 1)  # 16:06:01; both were due at 16:01
    tally = await schedules(runtime).tick()
    assert tally["missed"] == 1 and tally["dispatched"] == 3
    missed = await call(runtime, "GetSchedule", schedule_id=skipping["schedule_id"])
    assert missed["counters"]["missed"] == 1 and missed["dispatches"] == []
    assert missed["last_missed_at"].startswith("2025-11-24T16:06:01.")
    assert missed["next_run_at"] == "2025-11-24T16:07:00Z"
    caught = await call(runtime, "GetSchedule", schedule_id=catching["schedule_id"])
    assert [d["scheduled_for"] for d in reversed(caught["dispatches"])] == [
        "2025-11-24T16:01:00Z",
        "2025-11-24T16:03:00Z",
        "2025-11-24T16:05:00Z",
    ]
    assert len(caught["active_job_ids"]) == 3


async def test_a_delayed_schedule_runs_once(runtime: InMemoryRuntime, clock: FakeClock) -> None:
    record = await create(runtime, {"kind": "delayed", "run_at": "2025-11-24T16:00:30Z"})
    assert record["next_run_at"] == "2025-11-24T16:00:30Z"
    clock.advance(31)
    assert (await schedules(runtime).tick())["dispatched"] == 1
    done = await call(runtime, "GetSchedule", schedule_id=record["schedule_id"])
    assert done["status"] == "completed" and done["enabled"] is False
    assert done["next_run_at"] is None and done["dispatches"][0]["reason"] == "delayed"
    clock.advance(3600)
    assert (await schedules(runtime).tick())["checked"] == 0


async def test_pause_resume_update_and_dispatch_by_hand(
    runtime: InMemoryRuntime, clock: FakeClock
) -> None:
    record = await create(runtime, {"cron": "0 * * * *"})
    schedule_id = record["schedule_id"]
    paused = await call(runtime, "PauseSchedule", schedule_id=schedule_id, reason="holiday")
    assert paused["status"] == "paused" and paused["enabled"] is False
    assert paused["last_status_reason"] == "holiday"
    clock.advance(3600 * 2)
    assert (await schedules(runtime).tick())["checked"] == 0
    # A dispatch by hand works on a paused schedule; the reason is kept as sent.
    tally = await call(
        runtime, "DispatchSchedule", schedule_id=schedule_id, payload_json='{"a": 1}', reason=""
    )
    assert tally == {
        "checked": 1, "dispatched": 1, "skipped": 0, "failed": 0, "missed": 0, "blocked": 0,
        "version": 1,
    }  # fmt: skip
    manual = (await call(runtime, "GetSchedule", schedule_id=schedule_id))["dispatches"][0]
    assert manual["reason"] == "" and manual["metadata"]["payload"] == {"a": 1}
    resumed = await call(runtime, "ResumeSchedule", schedule_id=schedule_id, reason="back")
    assert resumed["status"] == "active" and resumed["enabled"] is True
    assert resumed["next_run_at"] == "2025-11-24T19:00:00Z"  # from now, not made up
    assert resumed["last_status_reason"] == "holiday"
    updated = await call(
        runtime, "UpdateSchedule", schedule_id=schedule_id, attrs_json='{"crons": ["30 * * * *"]}'
    )
    assert updated["crons"] == ["30 * * * *"] and updated["next_run_at"] == "2025-11-24T18:30:00Z"
    assert updated["counters"]["dispatched"] == 1 and len(updated["dispatches"]) == 1
    assert updated["created_at"] == record["created_at"] and "last_status_reason" not in updated
    code, message = await refusal(
        runtime, "UpdateSchedule", schedule_id=schedule_id, attrs_json='{"kind": "delayed"}'
    )
    assert (code, message) == (
        "INVALID_ARGUMENT",
        '["delayed schedules require a valid run_at or delay_ms"]',
    )


async def test_unknown_schedules(runtime: InMemoryRuntime) -> None:
    for rpc in ("GetSchedule", "PauseSchedule", "ResumeSchedule", "DispatchSchedule"):
        assert await refusal(runtime, rpc, schedule_id="sched_nothere") == (
            "INVALID_ARGUMENT",
            '"schedule sched_nothere was not found"',
        )
    deleted = await call(runtime, "DeleteSchedule", schedule_id="sched_nothere", reason="x")
    assert deleted == {"schedule_id": "sched_nothere", "status": "deleted", "version": 1}


async def test_listing_and_deleting(runtime: InMemoryRuntime) -> None:
    periodic = await create(runtime, {"cron": "@daily"})
    trigger = await create(runtime, {"kind": "event", "trigger": {"event_type": "a"}})
    await call(runtime, "PauseSchedule", schedule_id=trigger["schedule_id"])
    everything = await call(runtime, "ListSchedules", query_json="")
    ids = sorted([periodic["schedule_id"], trigger["schedule_id"]])
    assert [r["schedule_id"] for r in everything["data"]] == ids and everything["version"] == 1
    for query, wanted in [
        ({"kind": "event"}, [trigger]),
        ({"status": "active"}, [periodic]),
        ({"enabled": False}, [trigger]),
        ({"kind": ""}, [periodic, trigger]),
    ]:
        found = await call(runtime, "ListSchedules", query_json=json.dumps(query))
        assert {r["schedule_id"] for r in found["data"]} == {r["schedule_id"] for r in wanted}
    await call(runtime, "DeleteSchedule", schedule_id=periodic["schedule_id"])
    left = await call(runtime, "ListSchedules", query_json="{}")
    assert [r["schedule_id"] for r in left["data"]] == [trigger["schedule_id"]]


async def test_trigger_events_start_matching_event_schedules(runtime: InMemoryRuntime) -> None:
    filters = {
        "customer": "acme",
        "region": ["eu", "us"],
        "order.id": {"prefix": "ord-"},
        "note": {"contains": "rush"},
        "source": "billing",
        "anything": None,
    }
    matching = await create(
        runtime, {"trigger": {"event_type": "invoice.received", "filters": filters}}
    )
    other_type = await create(runtime, {"event_type": "invoice.paid"})
    payload = {"customer": "acme", "region": "eu", "order": {"id": "ord-7"}, "note": "a rush job"}
    emitted = await call(
        runtime,
        "EmitTriggerEvent",
        event_type="invoice.received",
        payload_json=json.dumps(payload),
        source="billing",
    )
    event = emitted["event"]
    assert re.fullmatch(r"event_[A-Za-z0-9_-]{11}", event["event_id"])
    assert event["payload"] == payload and event["source"] == "billing"
    assert emitted["checked"] == 1 and emitted["dispatched"] == 1
    assert emitted["windows_closed"] == 0 and emitted["version"] == 1
    started = (await call(runtime, "GetSchedule", schedule_id=matching["schedule_id"]))[
        "dispatches"
    ][0]
    assert started["reason"] == "event" and started["metadata"]["event"] == event
    untouched = await call(runtime, "GetSchedule", schedule_id=other_type["schedule_id"])
    assert untouched["dispatches"] == []
    for change in [
        {"customer": "other"},
        {"region": "apac"},
        {"order": {"id": "x-7"}},
        {"note": "slow"},
    ]:
        missed = await call(
            runtime,
            "EmitTriggerEvent",
            event_type="invoice.received",
            payload_json=json.dumps({**payload, **change}),
            source="billing",
        )
        assert missed["checked"] == 0, change
    # Its first job still runs: the next matching event is blocked, not started.
    blocked = await call(
        runtime,
        "EmitTriggerEvent",
        event_type="invoice.received",
        payload_json=json.dumps(payload),
        source="billing",
    )
    assert (blocked["checked"], blocked["blocked"], blocked["dispatched"]) == (1, 1, 0)
    # Without a source the event's is "api"; nothing is validated.
    bare = await call(runtime, "EmitTriggerEvent", event_type="", payload_json="not json")
    assert bare["event"]["source"] == "api" and bare["event"]["payload"] == {}
    listed = await call(runtime, "ListTriggerEvents", limit=3)
    assert listed["data"][0]["event_id"] == bare["event"]["event_id"]
    assert len(listed["data"]) == 3
    assert len((await call(runtime, "ListTriggerEvents", limit=0))["data"]) == 1


async def test_the_last_thousand_events_are_kept(runtime: InMemoryRuntime) -> None:
    first = await call(runtime, "EmitTriggerEvent", event_type="tick")
    for _ in range(1000):
        await call(runtime, "EmitTriggerEvent", event_type="tick")
    kept = (await call(runtime, "ListTriggerEvents", limit=5000))["data"]
    assert len(kept) == 1000 and first["event"]["event_id"] not in {e["event_id"] for e in kept}


async def test_a_window_that_ends_cancels_its_job(
    runtime: InMemoryRuntime, clock: FakeClock
) -> None:
    record = await create(
        runtime, {"cron": "@daily", "window": {"duration_ms": 30_000, "end_action": "cancel"}}
    )
    await call(runtime, "DispatchSchedule", schedule_id=record["schedule_id"])
    entry = (await call(runtime, "GetSchedule", schedule_id=record["schedule_id"]))["dispatches"][0]
    assert entry["window_end_at"].startswith("2025-11-24T16:00:30.")
    clock.advance(31)
    assert (await schedules(runtime).tick())["windows_closed"] == 1
    closed = await call(runtime, "GetSchedule", schedule_id=record["schedule_id"])
    assert closed["dispatches"][0]["status"] == "window_closed"
    assert closed["active_job_ids"] == []
    job = json.loads((await runtime.get_job(entry["job_id"])).raw)
    assert job["job"]["status"] == "cancelled"


async def test_a_schedule_of_a_job_definition_starts_runs(
    runtime: InMemoryRuntime, clock: FakeClock
) -> None:
    started: list[dict[str, Any]] = []

    async def start_run(inputs: dict[str, Any]) -> str:
        started.append(inputs)
        if inputs.get("refuse"):
            raise CoreRefusal("INTERNAL", "job_not_active")
        return f"run-{len(started)}"

    record = await schedules(runtime).create_for_definition(
        job_id="job_demo",
        owner_node="mn1@127.0.0.1",
        manifest=pipeline_manifest(),
        schedule_json='{"cron": "* * * * *"}',
        source_json='{"sdk": "create_job_schedule"}',
        start_run=start_run,
    )
    assert record["job_id"] == "job_demo" and record["owner_node"] == "mn1@127.0.0.1"
    assert record["active_run_ids"] == [] and "active_job_ids" not in record
    assert "version" not in record
    clock.advance(61)
    assert (await schedules(runtime).tick())["dispatched"] == 1
    await call(
        runtime, "DispatchSchedule", schedule_id=record["schedule_id"], payload_json='{"refuse": 1}'
    )
    after = await call(runtime, "GetSchedule", schedule_id=record["schedule_id"])
    assert started == [{}, {"refuse": 1}]
    failed, ran = after["dispatches"]
    assert ran["run_id"] == "run-1" and "job_id" not in ran
    assert failed["status"] == "failed" and failed["status_reason"] == "job_not_active"
    assert after["counters"] == {"dispatched": 1, "missed": 0, "failed": 1}
    # run-1 is no v1 job this runtime knows: it is no longer counted as active.
    assert after["active_run_ids"] == []
    with pytest.raises(CoreRefusal) as refused:
        await schedules(runtime).create_for_definition(
            job_id="job_demo",
            owner_node="mn1@127.0.0.1",
            manifest=pipeline_manifest(),
            schedule_json='{"kind": "event"}',
            source_json="",
            start_run=start_run,
        )
    assert refused.value.code == "INVALID_ARGUMENT"


async def test_the_ticker_dispatches_on_a_running_runtime(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(schedule_dispatch, "TICK_SECONDS", 0.01)
    runtime = InMemoryRuntime(release="1.2.5", step_seconds=0.001)
    group = schedules(runtime)
    passes: list[int] = []
    tick = group.tick

    async def failing_once(now: Any = None) -> dict[str, Any]:
        passes.append(1)
        if len(passes) == 1:
            raise RuntimeError("a pass that fails")
        return await tick(now)

    monkeypatch.setattr(group, "tick", failing_once)
    await runtime.start()
    try:
        record = await create(runtime, {"kind": "delayed", "delay_ms": 0})
        for _ in range(500):
            found = await call(runtime, "GetSchedule", schedule_id=record["schedule_id"])
            if found["status"] == "completed":
                break
            await asyncio.sleep(0.01)
        # The pass that failed did not stop the dispatcher.
        assert found["status"] == "completed" and found["counters"]["dispatched"] == 1
        assert len(passes) > 1
        ticker = schedules(runtime)._ticker
    finally:
        await runtime.close()
    assert ticker is not None and ticker.done() and schedules(runtime)._ticker is None


@pytest.mark.parametrize("release", ["1.1", "d26bef71"])
async def test_older_cores_have_no_schedules(release: str) -> None:
    runtime = InMemoryRuntime(auto_run=False, release=release)
    assert runtime.services.group("schedules") is None
    assert await refusal(runtime, "ListSchedules", query_json="{}") == (
        "UNIMPLEMENTED",
        "Method not found!",
    )
