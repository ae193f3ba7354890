"""The later routes against the published gateway: mn-api 1.2.31 and this gateway side by
side, in front of one mn-fake-core in the 1.2.31 profile (two nodes), driven through the
same scenario. Each route answers both alike (2xx, the same keys and JSON types at every
level; records are made through each gateway, so their values differ), or both refuse it
(ours with a problem and its stable code, mn-api with its own). Where this gateway answers
otherwise on purpose, DIFFERENCES says how and why; the comparison reads that table, and
each scenario checks it met every row of its group (docs/LATER_SERVICES.md lists them)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from mn_api.testing.control import CoreControl
from tests.support import (
    CORE_CREDENTIALS,
    FakeCoreProcess,
    check_problem,
    free_port,
    make_zip,
    pipeline_manifest,
)
from tests.support.parity import (
    ROUTES,
    V1,
    V2,
    Difference,
    Each,
    Parity,
    daemon,
    later_routes,
    shape,
    shape_differences,
    side_by_side,
    sse_frames,
    text,
    unnamed,
    until,
    until_status,
)

pytestmark = pytest.mark.slow

ADMIN, READ, JOIN = "parity-admin-token", "parity-read-token", "parity-join-token"
MN2 = "mn2@127.0.0.1"
BAD, FAILED = "MN_INVALID_ARGUMENT", "MN_EXECUTION_FAILED"
CODES = "the gateway's stable codes name what is missing"
STATE = "a change the record's state forbids is 409 `invalid_transition`"
REFUSED = "what the core refuses of a request is 400 `invalid_argument`, with its reason"
SCHEMA = "a bad request is refused by its schema, a problem with a stable code"
STRICT = "strict bodies: checked before the core is asked, not a failure of the execution"

# Where this gateway answers otherwise than mn-api 1.2.31, and why:
# group, ours, theirs (status and code; None: 200), where, why.
D = Difference
# fmt: off
DIFFERENCES: dict[str, Difference] = {
    "read_token": D(
        "auth", (403, "forbidden"), None, "every later route",
        "GETs take a read token and changes an admin one; mn-api has one token for all"),
    "bad_token": D(
        "auth", (401, "unauthorized"), (401, "detail"), "every later route",
        "a refused token is a problem with a code, as every refusal of this gateway"),
    "unimplemented": D(
        "auth", (501, "not_supported"), (500, FAILED), "every later route",
        "a core without the service (older releases) is 501 `not_supported`, not 500"),
    "native_ports": D(
        "resources", None, None, "GET /resource",
        "`native_ports` is the API host's configuration (its core's address among it), "
        "not the core's document: this gateway does not tell where its core is",
        only_theirs=("native_ports",)),
    "bad_share": D(
        "resources", (422, "validation_error"), (422, BAD), "POST, PUT /resource",
        "limits are 25, 50, 75 or 100, as the request's schema says"),
    "check_instances": D(
        "services", None, None, "POST /services:check",
        "the check is the core's (CheckServices), which names each instance by id, name, "
        "address, port, node, job_id, agent_id, tags, status and health; mn-api checks on "
        "its own host through ResolveService and lists whole registry records",
        only_theirs=tuple(f"results[].instances[].{key}" for key in (
            "checks", "created_at", "meta", "origin", "provider", "updated_at"))),
    "no_check_source": D(
        "services", (422, "validation_error"), (422, "detail"), "POST /services:check",
        SCHEMA),
    "unknown_schedule": D(
        "schedules", (404, "schedule_not_found"), (422, BAD), "/schedules/{id}...",
        "the core says INVALID_ARGUMENT `schedule X was not found`: a record that is not "
        "there is 404"),
    "bad_cron": D("schedules", (400, "invalid_argument"), (422, BAD), "POST /schedules", REFUSED),
    "no_event_type": D(
        "schedules", (422, "validation_error"), (422, "detail"), "POST /events", SCHEMA),
    "unknown_deployment": D(
        "deployments", (404, "deployment_not_found"), (404, "MN_NOT_FOUND"),
        "GET /deployments/{id_or_key}", CODES),
    "unknown_deployment_action": D(
        "deployments", (404, "deployment_not_found"), (422, BAD),
        "POST /deployments/{id_or_key}/promote, pause, fail...",
        "a record that is not there is 404 for every action (the core says "
        "INVALID_ARGUMENT for all but GetDeployment)"),
    "promotion_out_of_turn": D(
        "deployments", (409, "invalid_transition"), (422, BAD),
        "POST /deployments/{id_or_key}/promote", STATE),
    "no_rollback_target": D(
        "deployments", (400, "invalid_argument"), (422, BAD),
        "POST /deployments/{id_or_key}/rollback", REFUSED),
    "optional_rollback_body": D(
        "deployments", (200, None), (422, "detail"), "POST /deployments/{id_or_key}/rollback",
        "every field of the body has a default, so the body may be left out"),
    "backup_of_live_job": D(
        "backups", (409, "invalid_transition"), (412, "failed_precondition"),
        "POST /jobs/{job_id}/backup", STATE),
    "unknown_job": D(
        "backups", (404, "job_not_found"), (404, "MN_NOT_FOUND"), "POST /jobs/{job_id}/backup",
        CODES),
    "restored": D(
        "backups", (201, None), None, "POST /jobs/restore",
        "a create is 201 Created and says where the new job is (Location)", location=True),
    "bad_backup": D(
        "backups", (400, "invalid_argument"), (422, BAD), "POST /jobs/restore", REFUSED),
    "created": D(
        "definitions", (201, None), None, "POST /api/v2/jobs, /api/v2/jobs/{job_id}/runs",
        "a create is 201 Created and says where the new record is (Location)", location=True),
    "schedule_created": D(
        "definitions", (201, None), None, "POST /api/v2/jobs/{job_id}/schedules",
        "a create is 201 Created"),
    "unknown_definition": D(
        "definitions", (404, "job_definition_not_found"), (404, "MN_NOT_FOUND"),
        "/api/v2/jobs/{job_id}...", CODES),
    "unknown_run": D(
        "definitions", (404, "run_not_found"), (404, "MN_NOT_FOUND"), "/api/v2/runs/{run_id}...",
        CODES),
    "pause_of_ended_run": D(
        "definitions", (409, "invalid_transition"), (404, "MN_NOT_FOUND"),
        "POST /api/v2/runs/{run_id}/pause",
        "a run that has ended cannot be paused: 409, not 404 (the core says NOT_FOUND "
        "`not running`)"),
    "unconfirmed_delete": D(
        "definitions", (422, "validation_error"), (500, FAILED),
        "DELETE /api/v2/jobs/{job_id}, /api/v2/runs/{run_id}",
        f"{STRICT} (`confirmed` must be true)"),
    "bad_definition_id": D(
        "definitions", (422, "validation_error"), (500, FAILED), "POST /api/v2/jobs",
        f"{STRICT} (an id the core would not take)"),
    "stream_framing": D(
        "operations", None, None, "GET /operations/{id}/events",
        "the stream opens with `retry:`, keeps the connection with comment lines and "
        "leaves the core's `stream_heartbeat` events out; mn-api passes them on as events"),
    "last_event_id": D(
        "operations", None, None, "GET /operations/{id}/events",
        "a reconnecting EventSource resumes after its Last-Event-ID (mn-api reads only "
        "`after_sequence`, and replays from the start)"),
    "unknown_operation_stream": D(
        "operations", (404, "operation_not_found"), None, "GET /operations/{id}/events",
        "an unknown operation is 404 before the stream starts; mn-api answers 200 and one "
        "`event: error` MN_OPERATION_STREAM_FAILED"),
    "unknown_operation": D(
        "operations", (404, "operation_not_found"), (404, "MN_NOT_FOUND"),
        "GET /operations/{id}", CODES),
    "unknown_kind": D(
        "operations", (422, "validation_error"), (422, BAD), "POST /operations/{kind}",
        "the kinds are the core's four, as the request's schema says"),
    "bad_node_name": D(
        "nodes", (422, "validation_error"), (422, "detail"), "/nodes/{node_name}/...", SCHEMA),
    "bad_deadline": D(
        "nodes", (422, "validation_error"), (500, FAILED), "POST /nodes/{node_name}/drain",
        f"{STRICT} (a duration such as 30m)"),
    "join_refused": D(
        "nodes", (403, "join_refused"), (403, "MN_PERMISSION_DENIED"),
        "POST /system/cluster/nodes:add, nodes:join",
        "the gateway's stable codes say what refused it: the other node, not this gateway"),
}
# fmt: on


@pytest.fixture(scope="module")
def core() -> Iterator[FakeCoreProcess]:
    """Two nodes (mn1 the gateways' own, mn2 to drain and join), each on a port."""
    arguments = ("--release", "1.2.31", "--step-ms", "5", "--nodes", "2", "--join-token", JOIN)
    process = FakeCoreProcess(free_port(), *arguments, *CORE_CREDENTIALS).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def clients(
    core: FakeCoreProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    with side_by_side(core, tmp_path_factory, ADMIN, READ) as clients:
        yield clients


@pytest.fixture
def parity(clients: tuple[httpx.Client, httpx.Client]) -> Parity:
    return Parity(*clients, DIFFERENCES)


def test_the_table_holds_every_later_route_both_serve(parity: Parity) -> None:
    ours, theirs = (
        later_routes(c.get("/openapi.json").json()) for c in (parity.ours, parity.theirs)
    )
    listed = {(method, unnamed(path)) for routes in ROUTES.values() for method, path in routes}
    assert ours & theirs == listed


def test_tokens_and_cores_without_the_service(parity: Parity, core: FakeCoreProcess) -> None:
    reader = {"Authorization": f"Bearer {READ}"}
    listed = parity.ours.get(f"{V1}/schedules", headers=reader)
    assert listed.status_code == 200
    refused = parity.ours.post(f"{V1}/events", headers=reader, json={"event_type": "x"})
    assert (refused.status_code, refused.json()["error"]) == DIFFERENCES["read_token"].ours
    # mn-api's one token does it all.
    assert parity.theirs.post(f"{V1}/events", json={"event_type": "x"}).status_code == 200
    parity.used.add("read_token")
    wrong = {"Authorization": "Bearer not-the-token"}
    parity.refused("GET", f"{V1}/deployments", "bad_token", headers=wrong)
    # A core without job definitions: each gateway's call of GetRun is answered as a core
    # of 1.2.5 would (tests/contract/test_later_profiles.py runs such cores).
    control = CoreControl(f"127.0.0.1:{core.port}")
    control.fail_next("GetRun", count=2, code="UNIMPLEMENTED", message="Method not found!")
    parity.refused("GET", f"{V2}/runs/{{run_id}}", "unimplemented", {"run_id": "r-1"})
    parity.check_group("auth", [])


def test_resources(parity: Parity) -> None:
    ours, theirs = parity.same("GET", f"{V1}/resource", differs=["native_ports"])
    assert ours["nodes"][0]["name"] == theirs["nodes"][0]["name"]
    for method in ("POST", "PUT"):
        changed, _ = parity.same(method, f"{V1}/resource", json={"cpu": 50})
        assert changed["limits"]["cpu"] == 50
        parity.refused(method, f"{V1}/resource", "bad_share", json={"cpu": 33})
    parity.same("PUT", f"{V1}/resource", json={"cpu": 100})
    parity.check_group("resources", ROUTES["resources"])


def test_services(parity: Parity) -> None:
    offered = daemon("parity-services", services=[{"name": "parity-db", "tags": ["primary"]}])
    started = parity.ours.post(f"{V1}/jobs", json={"manifest": offered})
    assert started.status_code == 201, started.text
    job_id = started.json()["job_id"]
    until(lambda: bool(parity.ours.get(f"{V1}/services").json()["services"]))
    listed, _ = parity.same("GET", f"{V1}/services", params={"job_id": job_id})
    assert [s["name"] for s in listed["services"]] == ["parity-db"]
    name = {"name": "parity-db"}
    parity.same("GET", f"{V1}/services/{{name}}/resolve", name, params={"tag": "primary"})
    none, _ = parity.same("GET", f"{V1}/services/{{name}}/resolve", {"name": "nobody"})
    assert none["services"] == []
    required = daemon(
        "parity-needs",
        required_services=[{"name": "parity-db", "tags": ["primary"]}, {"name": "parity-cache"}],
    )
    upload = make_zip({"manifest.json": text(required), "payloads/input.txt": "hello"})
    ours_bundle = parity.ours.post(
        f"{V1}/bundles/upload", files={"bundle": ("b.zip", upload, "application/zip")}
    ).json()["bundle_id"]
    theirs_bundle = parity.theirs.post(
        f"{V1}/bundles/upload", files={"bundle": ("b.zip", upload, "application/zip")}
    ).json()["bundle_path"]
    for route in (f"{V1}/services:check", f"{V1}/services/check"):
        body = Each({"_bundle_path": ours_bundle}, {"_bundle_path": theirs_bundle})
        report, _ = parity.same("POST", route, json=body, differs=["check_instances"])
        assert [r["ok"] for r in report["results"]] == [True, False]
    parity.refused("POST", f"{V1}/services:check", "no_check_source", json={})
    parity.ours.post(f"{V1}/jobs/{job_id}/cancel")
    parity.check_group("services", ROUTES["services"])


def test_schedules_triggers_and_events(parity: Parity) -> None:
    body = {"manifest_json": text(pipeline_manifest()), "payloads": {"input.txt": "hello"}}
    made = {}
    for route, schedule in (
        (f"{V1}/schedules", {"kind": "periodic", "crons": ["0 2 * * *"], "name": "nightly"}),
        (f"{V1}/schedules/periodic", {"crons": ["30 1 * * *"]}),
        (f"{V1}/schedules/delayed", {"delay_ms": 3_600_000}),
    ):
        ours, theirs = parity.same("POST", route, json={**body, "schedule": schedule})
        made[route] = ({"schedule_id": ours["schedule_id"]}, {"schedule_id": theirs["schedule_id"]})
    periodic, delayed = made[f"{V1}/schedules"], made[f"{V1}/schedules/delayed"]
    one = f"{V1}/schedules/{{schedule_id}}"
    parity.same("GET", f"{V1}/schedules", params={"kind": "delayed"})
    parity.same("GET", one, periodic)
    renamed, _ = parity.same("PATCH", one, periodic, json={"attrs": {"name": "renamed"}})
    assert renamed["name"] == "renamed"
    paused, _ = parity.same("POST", f"{one}/pause", periodic, json={"reason": "freeze"})
    assert paused["status"] == "paused"
    parity.same("POST", f"{one}/resume", periodic)
    tally, _ = parity.same("POST", f"{one}/dispatch", delayed, json={"payload": {"n": 1}})
    assert tally["dispatched"] == 1
    parity.same("GET", one, delayed)
    trigger = {"name": "on-upload", "trigger": {"event_type": "parity.upload"}}
    ours, theirs = parity.same("POST", f"{V1}/triggers", json={**body, "schedule": trigger})
    parity.same("GET", f"{V1}/triggers")
    emitted, _ = parity.same(
        "POST", f"{V1}/events", json={"event_type": "parity.upload", "payload": {"n": 1}}
    )
    assert emitted["event"]["event_type"] == "parity.upload" and emitted["dispatched"] == 2
    parity.same("GET", f"{V1}/events", params={"limit": 5})
    triggers = ({"schedule_id": ours["schedule_id"]}, {"schedule_id": theirs["schedule_id"]})
    parity.same("DELETE", f"{V1}/triggers/{{schedule_id}}", triggers)
    for ids in made.values():
        parity.same("DELETE", one, ids)
    nobody = {"schedule_id": "sched_nobody"}
    for method, route in (("GET", one), ("PATCH", one), ("POST", f"{one}/pause")):
        parity.refused(method, route, "unknown_schedule", nobody, json={"attrs": {}})
    bad = {**body, "schedule": {"cron": "99 * * * *"}}
    parity.refused("POST", f"{V1}/schedules", "bad_cron", json=bad)
    parity.refused("POST", f"{V1}/events", "no_event_type", json={"payload": {}})
    parity.check_group("schedules", ROUTES["schedules"])


def test_deployments(parity: Parity) -> None:
    keys = ({"id_or_key": "parity-ours"}, {"id_or_key": "parity-theirs"})

    def deploy(manifest: dict[str, Any], **extra: Any) -> Any:
        request = {"manifest_json": text(manifest), **extra}
        body = Each({**request, "key": "parity-ours"}, {**request, "key": "parity-theirs"})
        return parity.same("POST", f"{V1}/deployments", json=body)[0]

    assert deploy(daemon("parity-deploy"))["status"] == "successful"
    canary = deploy(
        daemon("parity-deploy", {"model": "larger"}), policy={"strategy": "canary", "canary": 1}
    )
    assert canary["status"] == "awaiting_promotion"
    one = f"{V1}/deployments/{{id_or_key}}"
    parity.same("GET", f"{V1}/deployments")
    parity.same("GET", one, keys)
    promoted, _ = parity.same("POST", f"{one}/promote", keys)
    assert promoted["status"] == "successful"
    parity.refused("POST", f"{one}/promote", "promotion_out_of_turn", keys)
    rolled, _ = parity.same("POST", f"{one}/rollback", keys, json={"version": "1"})
    assert rolled["version"]["version"] == "3"
    ours, theirs = parity.both("POST", f"{one}/rollback", keys)
    parity.used.add("optional_rollback_body")
    assert (ours.status_code, theirs.status_code) == (200, 422), (ours.text, theirs.text)
    assert set(theirs.json()) == {"detail"}
    # The same rollback through mn-api, with the body it needs.
    assert parity.theirs.post(f"{V1}/deployments/parity-theirs/rollback", json={}).is_success
    parity.refused("POST", f"{one}/rollback", "no_rollback_target", keys, json={"version": "99"})
    for action in ("pause", "resume", "fail"):
        marked, _ = parity.same("POST", f"{one}/{action}", keys, json={"reason": action})
        assert marked["status"] == {"pause": "paused", "resume": "running"}.get(action, "failed")
    nobody = {"id_or_key": "parity-nobody"}
    parity.refused("GET", one, "unknown_deployment", nobody)
    for action in ("promote", "pause", "fail"):
        parity.refused("POST", f"{one}/{action}", "unknown_deployment_action", nobody, json={})
    parity.check_group("deployments", ROUTES["deployments"])


def test_backups(parity: Parity) -> None:
    # Both jobs submitted alike (mn-api prepares a submission on its own host, adding to
    # the manifest), each backed up through one gateway.
    made = []
    for _ in range(2):
        answer = parity.ours.post(f"{V1}/jobs", json={"manifest": daemon("parity-backup")})
        assert answer.status_code == 201, answer.text
        made.append({"job_id": answer.json()["job_id"]})
    ids = (made[0], made[1])
    for client, job in zip((parity.ours, parity.theirs), ids, strict=True):
        until_status(client, f"{V1}/jobs/{job['job_id']}", "running")
    backup = f"{V1}/jobs/{{job_id}}/backup"
    parity.refused("POST", backup, "backup_of_live_job", ids)
    for client, job in zip((parity.ours, parity.theirs), ids, strict=True):
        client.post(f"{V1}/jobs/{job['job_id']}/pause")
        until_status(client, f"{V1}/jobs/{job['job_id']}", "paused")
    ours, theirs = parity.same("POST", backup, ids)
    # The backup document itself, as the core wrote it.
    documents = [orjson.loads(doc["backup_json"]) for doc in (ours, theirs)]
    assert not shape_differences(shape(documents[0]), shape(documents[1]))
    keep = ("backup_json", "bundle_files")
    body = Each({k: ours[k] for k in keep}, {k: theirs[k] for k in keep})
    restored, _ = parity.same("POST", f"{V1}/jobs/restore", json=body, differs=["restored"])
    assert restored["status"] == "paused"
    parity.refused("POST", f"{V1}/jobs/restore", "bad_backup", json={"backup_json": "{}"})
    parity.refused("POST", backup, "unknown_job", {"job_id": "parity-nobody"})
    for client, job in zip((parity.ours, parity.theirs), ids, strict=True):
        client.post(f"{V1}/jobs/{job['job_id']}/cancel")
    parity.check_group("backups", ROUTES["backups"])


def test_job_definitions_and_runs(parity: Parity) -> None:
    ids = ({"job_id": "parity-ours"}, {"job_id": "parity-theirs"})
    manifest = text(daemon("parity-definition"))
    body = Each(
        {"manifest_json": manifest, "job_id": "parity-ours"},
        {"manifest_json": manifest, "job_id": "parity-theirs"},
    )
    parity.same("POST", f"{V2}/jobs", json=body, differs=["created"])
    one = f"{V2}/jobs/{{job_id}}"
    parity.same("GET", f"{V2}/jobs")
    parity.same("GET", one, ids)
    parity.same("PATCH", one, ids, json={"attrs": {"job_name": "renamed"}})
    ours, theirs = parity.same(
        "POST", f"{one}/runs", ids, json={"inputs": {"n": 1}}, differs=["created"]
    )
    runs = ({"run_id": ours["run_id"]}, {"run_id": theirs["run_id"]})
    run = f"{V2}/runs/{{run_id}}"
    for client, at in zip((parity.ours, parity.theirs), runs, strict=True):
        until_status(client, f"{V2}/runs/{at['run_id']}", "running")
    parity.same("GET", f"{one}/runs", ids)
    parity.same("GET", run, runs)
    parity.same("POST", f"{run}/pause", runs)
    parity.same("POST", f"{run}/resume", runs)
    parity.same("POST", f"{run}/cancel", runs)
    for client, at in zip((parity.ours, parity.theirs), runs, strict=True):
        until_status(client, f"{V2}/runs/{at['run_id']}", "cancelled")
    parity.refused("POST", f"{run}/pause", "pause_of_ended_run", runs)
    parity.refused("DELETE", run, "unconfirmed_delete", runs, json={"confirmed": False})
    parity.same("DELETE", run, runs, json={"confirmed": True})
    schedule = {"schedule": {"kind": "periodic", "crons": ["0 3 * * *"]}}
    parity.same("POST", f"{one}/schedules", ids, json=schedule, differs=["schedule_created"])
    parity.same("POST", f"{one}/data:reset", ids)
    parity.same("POST", f"{one}/archive", ids)
    parity.refused("DELETE", one, "unconfirmed_delete", ids, json={"confirmed": False})
    parity.same("DELETE", one, ids, json={"confirmed": True})
    parity.refused("GET", one, "unknown_definition", {"job_id": "parity-nobody"})
    parity.refused("GET", run, "unknown_run", {"run_id": "parity-nobody"})
    bad = {"manifest_json": manifest, "job_id": "no spaces"}
    parity.refused("POST", f"{V2}/jobs", "bad_definition_id", json=bad)
    parity.check_group("definitions", ROUTES["definitions"])


def test_operations(parity: Parity) -> None:
    start, one = f"{V1}/operations/{{kind}}", f"{V1}/operations/{{operation_id}}"
    ours, _ = parity.same("POST", start, {"kind": "clear_jobs"}, json={})
    assert ours["status"] == "pending"
    path = f"{V1}/operations/{ours['operation_id']}"
    until(lambda: parity.ours.get(path).json()["status"] == "completed")
    # The same operation read through both.
    operation = {"operation_id": ours["operation_id"]}
    read, _ = parity.same("GET", one, operation)
    assert read["status"] == "completed" and isinstance(read["items"], dict)
    events = f"{one}/events"
    streams = parity.both("GET", events, operation)
    frames = []
    for answer in streams:
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/event-stream")
        frames.append(
            [(f["id"], f["event"], orjson.loads(f["data"])) for f in sse_frames(answer.text)]
        )
    assert frames[0] == frames[1] and frames[0][0][1] == "operation_created"
    assert frames[0][-1][1] == "operation_completed"
    assert streams[0].text.startswith("retry:") and not streams[1].text.startswith("retry:")
    parity.used.add("stream_framing")
    resumed = parity.both("GET", events, operation, headers={"Last-Event-ID": "1"})
    first_ids = [sse_frames(answer.text)[0]["id"] for answer in resumed]
    assert first_ids == ["2", "1"]
    parity.used.add("last_event_id")
    nobody = {"operation_id": "op-nobody"}
    ours_stream, theirs_stream = parity.both("GET", events, nobody)
    parity.used.add("unknown_operation_stream")
    assert ours_stream.status_code == 404
    assert check_problem(ours_stream.json())["error"] == "operation_not_found"
    assert theirs_stream.status_code == 200
    failure = sse_frames(theirs_stream.text)
    assert [(f["event"], orjson.loads(f["data"])) for f in failure] == [
        ("error", {"error": "MN_OPERATION_STREAM_FAILED"})
    ]
    parity.refused("GET", one, "unknown_operation", nobody)
    parity.refused("POST", start, "unknown_kind", {"kind": "explode"}, json={})
    parity.check_group("operations", ROUTES["operations"])


def test_nodes(parity: Parity, core: FakeCoreProcess) -> None:
    node, base = {"node_name": MN2}, f"{V1}/nodes/{{node_name}}"
    on, _ = parity.same("POST", f"{base}/maintenance", node, json={"reason": "parity"})
    assert on["status"] == "maintenance"
    off, _ = parity.same("POST", f"{base}/maintenance", node, json={"enabled": False})
    assert off["status"] == "healthy"
    undrained, _ = parity.same("POST", f"{base}/undrain", node, json={"mark_eligible": True})
    assert undrained["status"] == "cancelled"
    reconciling, _ = parity.same("POST", f"{base}/reconcile", node, json={"dry_run": True})
    assert reconciling["kind"] == "reconcile_node"
    drain = {"dry_run": True, "deadline": "1s", "reason": "parity"}
    draining, _ = parity.same("POST", f"{base}/drain", node, json=drain)
    assert draining["kind"] == "drain_node" and draining["deadline_ms"] == 1000
    port = CoreControl(f"127.0.0.1:{core.port}").status()["ports"][MN2]
    join = {"host": "127.0.0.1", "token": JOIN, "grpc_port": port}
    for route in ("nodes:add", "nodes:join"):
        added, _ = parity.same("POST", f"{V1}/system/cluster/{route}", json=join)
        assert (added["node_name"], added["status"]) == (MN2, "connected")
    guess = {**join, "token": "guess"}
    parity.refused("POST", f"{V1}/system/cluster/nodes:add", "join_refused", json=guess)
    parity.refused("POST", f"{base}/maintenance", "bad_node_name", {"node_name": "bad"}, json={})
    parity.refused("POST", f"{base}/drain", "bad_deadline", node, json={"deadline": "zz"})
    parity.check_group("nodes", ROUTES["nodes"])
