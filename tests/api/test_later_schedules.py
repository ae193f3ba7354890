"""/api/v1/schedules, /triggers and /events: the core's schedules and trigger events, over
the memory runtime and over gRPC to mn-fake-core (both 1.2.31), and refused as not supported
by cores without them."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.config import Settings
from tests.support import FakeClock, asgi_client, check_problem, pipeline_manifest

API = "/api/v1"


async def create(client: httpx.AsyncClient, path: str = "/schedules", **body: Any) -> Any:
    answer = await client.post(f"{API}{path}", json={"manifest": pipeline_manifest(), **body})
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_schedules_are_the_cores_records_as_it_wrote_them(
    client: httpx.AsyncClient,
) -> None:
    record = await create(
        client,
        "/schedules/periodic",
        schedule={"kind": "delayed", "crons": ["0 2 * * *"], "name": "nightly"},
    )
    # The kind of the route wins; the source says who made it.
    assert record["kind"] == "periodic" and record["name"] == "nightly"
    assert record["source"] == {"api": "create_schedule"} and record["version"] == 1
    assert record["next_run_at"] == "2025-11-25T02:00:00Z"
    schedule_id = record["schedule_id"]
    assert (await client.get(f"{API}/schedules/{schedule_id}")).json() == record
    delayed = await create(
        client,
        "/schedules/delayed",
        manifest=None,
        manifest_json='{"manifest_version": "1", "graph_id": "once", "nodes": [{"node_id": '
        '"a", "agent_type": "router"}], "entrypoints": ["a"]}',
        payloads_base64={"data/x.bin": base64.b64encode(b"\x00\x01").decode()},
        schedule={"delay_ms": 60_000},
        source={"team": "ops"},
    )
    assert delayed["kind"] == "delayed" and delayed["source"] == {"team": "ops"}
    trigger = await create(client, "/triggers", schedule={"trigger": {"event_type": "a.b"}})
    assert trigger["kind"] == "event"
    listed = (await client.get(f"{API}/schedules", params={"kind": "periodic"})).json()
    assert [r["schedule_id"] for r in listed["data"]] == [schedule_id]
    everything = (await client.get(f"{API}/schedules")).json()["data"]
    assert len(everything) == 3
    triggers = (await client.get(f"{API}/triggers")).json()["data"]
    assert [r["schedule_id"] for r in triggers] == [trigger["schedule_id"]]
    gone = await client.delete(f"{API}/triggers/{trigger['schedule_id']}")
    assert gone.json() == {"schedule_id": trigger["schedule_id"], "status": "deleted", "version": 1}
    assert (await client.get(f"{API}/triggers")).json()["data"] == []


async def test_what_is_refused_and_how(client: httpx.AsyncClient) -> None:
    bad = await client.post(
        f"{API}/schedules",
        json={"manifest": pipeline_manifest(), "schedule": {"cron": "99 * * * *"}},
    )
    assert bad.status_code == 400
    problem = check_problem(bad.json())
    assert problem["error"] == "invalid_argument"
    assert problem["detail"] == '["invalid cron expression \\"99 * * * *\\""]'
    for body in (
        {"schedule": {"cron": "@daily"}},
        {"manifest": pipeline_manifest(), "manifest_json": "{}"},
        {"manifest_json": "[1]"},
        {"manifest": pipeline_manifest(), "payloads_base64": {"a": "!"}},
    ):
        refused = await client.post(f"{API}/schedules", json=body)
        assert refused.status_code == 422, body
        assert check_problem(refused.json())["error"] == "validation_error"
    # "not found" in the core's reasons names a node of the manifest, not a schedule.
    manifest = pipeline_manifest()
    manifest["edges"].append({"from_node": "router", "to_node": "x not found", "message_type": "t"})
    missing = await client.post(f"{API}/schedules", json={"manifest": manifest})
    assert missing.status_code == 400
    assert "x not found" in check_problem(missing.json())["detail"]
    unsafe = await client.post(
        f"{API}/schedules", json={"manifest": pipeline_manifest(), "payloads": {"../x": "y"}}
    )
    assert unsafe.status_code == 422
    assert check_problem(unsafe.json())["error"] == "unsafe_payload_path"
    for method, path in [
        ("GET", "/schedules/sched_nothere"),
        # Only POST has the literal /schedules/periodic: a GET asks for that schedule.
        ("GET", "/schedules/periodic"),
        ("PATCH", "/schedules/sched_nothere"),
        ("POST", "/schedules/sched_nothere/pause"),
        ("POST", "/schedules/sched_nothere/resume"),
        ("POST", "/schedules/sched_nothere/dispatch"),
    ]:
        answer = await client.request(method, f"{API}{path}", json={} if method != "GET" else None)
        assert answer.status_code == 404, (method, path)
        assert check_problem(answer.json())["error"] == "schedule_not_found"
    deleted = await client.delete(f"{API}/schedules/sched_nothere", params={"reason": "x"})
    assert deleted.status_code == 200 and deleted.json()["status"] == "deleted"
    assert (await client.get(f"{API}/schedules/bad%20id")).status_code == 422
    for params in ({"limit": 0}, {"limit": 1001}):
        assert (await client.get(f"{API}/events", params=params)).status_code == 422
    assert (await client.post(f"{API}/events", json={"payload": {}})).status_code == 422


async def test_pausing_changing_and_running_now(client: httpx.AsyncClient) -> None:
    record = await create(client, schedule={"cron": "0 * * * *"})
    schedule_id = record["schedule_id"]
    paused = await client.post(f"{API}/schedules/{schedule_id}/pause", json={"reason": "freeze"})
    assert paused.json()["status"] == "paused"
    assert paused.json()["last_status_reason"] == "freeze"
    changed = await client.patch(
        f"{API}/schedules/{schedule_id}", json={"attrs": {"crons": ["30 * * * *"]}}
    )
    assert changed.json()["crons"] == ["30 * * * *"] and changed.json()["status"] == "paused"
    tally = await client.post(f"{API}/schedules/{schedule_id}/dispatch")
    assert tally.json() == {
        "checked": 1, "dispatched": 1, "skipped": 0, "failed": 0, "missed": 0, "blocked": 0,
        "version": 1,
    }  # fmt: skip
    entry = (await client.get(f"{API}/schedules/{schedule_id}")).json()["dispatches"][0]
    assert entry["reason"] == "manual"
    job = await client.get(f"{API}/jobs/{entry['job_id']}")
    assert job.status_code == 200 and job.json()["job"]["graph_id"] == "pipeline"
    resumed = await client.post(f"{API}/schedules/{schedule_id}/resume")
    assert resumed.json()["status"] == "active" and resumed.json()["enabled"] is True


async def test_a_periodic_schedule_dispatches_on_time(
    client: httpx.AsyncClient, memory_runtime: InMemoryRuntime, clock: FakeClock
) -> None:
    record = await create(client, schedule={"crons": ["* * * * *"]})
    clock.advance(61)
    await memory_runtime.services.group("schedules").tick()
    found = (await client.get(f"{API}/schedules/{record['schedule_id']}")).json()
    assert found["counters"]["dispatched"] == 1
    job_id = found["dispatches"][0]["job_id"]
    assert found["active_job_ids"] == [job_id]
    assert (await client.get(f"{API}/jobs/{job_id}")).status_code == 200


async def test_trigger_events(client: httpx.AsyncClient) -> None:
    trigger = await create(
        client,
        "/triggers",
        schedule={
            "name": "on-invoice",
            "trigger": {"event_type": "invoice.received", "filters": {"customer": "acme"}},
        },
    )
    emitted = await client.post(
        f"{API}/events",
        json={"event_type": "invoice.received", "payload": {"customer": "acme", "amount": 42}},
    )
    body = emitted.json()
    assert emitted.status_code == 200 and body["dispatched"] == 1
    assert body["event"]["source"] == "api" and body["event"]["payload"]["amount"] == 42
    other = await client.post(
        f"{API}/events",
        json={"event_type": "invoice.received", "payload": {"customer": "zeta"}, "source": "b"},
    )
    assert other.json()["checked"] == 0
    recent = (await client.get(f"{API}/events", params={"limit": 1})).json()["data"]
    assert [e["event_id"] for e in recent] == [other.json()["event"]["event_id"]]
    started = (await client.get(f"{API}/schedules/{trigger['schedule_id']}")).json()
    assert started["dispatches"][0]["metadata"]["event"]["event_id"] == body["event"]["event_id"]


async def test_reading_needs_a_read_token_and_changing_an_admin_one(
    settings_factory: Callable[..., Settings], memory_runtime: InMemoryRuntime
) -> None:
    settings = settings_factory(api_token="admin-token", read_tokens_raw="read-token")
    async with asgi_client(settings, memory_runtime) as client:
        read = {"Authorization": "Bearer read-token"}
        assert (await client.get(f"{API}/schedules", headers=read)).status_code == 200
        assert (await client.get(f"{API}/events", headers=read)).status_code == 200
        refused = await client.post(f"{API}/events", json={"event_type": "x"}, headers=read)
        assert refused.status_code == 403
        assert (await client.get(f"{API}/triggers")).status_code == 401
        admin = {"Authorization": "Bearer admin-token"}
        written = await client.post(f"{API}/events", json={"event_type": "x"}, headers=admin)
        assert written.status_code == 200


@pytest.mark.parametrize("release", ["1.1", "d26bef71"])
async def test_cores_without_schedules_answer_501(settings: Settings, release: str) -> None:
    runtime = InMemoryRuntime(auto_run=False, release=release)
    async with asgi_client(settings, runtime) as client:
        for method, path, body in [
            ("GET", "/schedules", None),
            ("POST", "/schedules", {"manifest": pipeline_manifest()}),
            ("GET", "/schedules/sched_x", None),
            ("POST", "/events", {"event_type": "x"}),
            ("GET", "/events", None),
            ("GET", "/triggers", None),
        ]:
            answer = await client.request(method, f"{API}{path}", json=body)
            assert answer.status_code == 501, (method, path)
            assert check_problem(answer.json())["error"] == "not_supported"
