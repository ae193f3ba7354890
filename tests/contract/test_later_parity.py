"""The later routes against the published gateway: mn-api 1.2.31 and this gateway side by
side, in front of one mn-fake-core in the 1.2.31 profile, driven through the same
scenario. Each route answers both alike (2xx, the same keys and JSON types at every
level; records are made through each gateway, so their values differ), or both refuse it
(ours with a problem and its stable code, mn-api with its own). Where this gateway answers
otherwise on purpose, DIFFERENCES says how and why; the comparison reads that table, and
each scenario checks it met every row of its group (docs/LATER_SERVICES.md lists them)."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from mn_api.testing.control import CoreControl
from tests.support import (
    CORE_CREDENTIALS,
    FakeCoreProcess,
    GatewayProcess,
    OfficialGatewayProcess,
    free_port,
    pipeline_manifest,
)
from tests.support.parity import (
    LATER,
    ROUTES,
    V1,
    V2,
    Difference,
    Each,
    Parity,
    shape,
    shape_differences,
    until,
)

pytestmark = pytest.mark.slow

ADMIN, READ = "parity-admin-token", "parity-read-token"

# Where this gateway answers otherwise than mn-api 1.2.31, and why. `ours`/`theirs`: the
# status (and a refusal's `error`; "detail" is FastAPI's bare `{"detail": ...}`).
D = Difference
DIFFERENCES: dict[str, Difference] = {
    # Anywhere.
    "read_token": D(
        "auth",
        "every later route",
        "GETs take a read token, changes an admin one; mn-api has one token for all",
        ours=(403, "forbidden"),
        theirs=(200, None),
    ),
    "bad_token": D(
        "auth",
        "every later route",
        "a refused token is a problem with a code, as every answer of this gateway",
        ours=(401, "unauthorized"),
        theirs=(401, "detail"),
    ),
    "unimplemented": D(
        "auth",
        "every later route, on a core without the service",
        "a core without the service is 501 `not_supported`, not a failed execution",
        ours=(501, "not_supported"),
        theirs=(500, "MN_EXECUTION_FAILED"),
    ),
    # Resources.
    "native_ports": D(
        "resources",
        "GET /resource",
        "`native_ports` is the API host's own configuration (the core's address among it), "
        "not the core's document; this gateway does not show where its core is",
        only_theirs=("native_ports",),
    ),
    "bad_share": D(
        "resources",
        "POST, PUT /resource",
        "limits are checked before the core is asked (25, 50, 75 or 100)",
        ours=(422, "validation_error"),
        theirs=(422, "MN_INVALID_ARGUMENT"),
    ),
    # Services.
    "no_check_source": D(
        "services",
        "POST /services:check",
        "the request's schema says what is needed, refused as every bad request",
        ours=(422, "validation_error"),
        theirs=(422, "detail"),
    ),
    "check_instances": D(
        "services",
        "POST /services:check",
        "the check is the core's (CheckServices), whose results name each instance by "
        "id, name, address, port, node, job_id, agent_id, tags, status and health; mn-api "
        "checks on its own host through ResolveService and lists whole registry records",
        only_theirs=tuple(
            f"results[].instances[].{key}"
            for key in ("checks", "created_at", "meta", "origin", "provider", "updated_at")
        ),
    ),
    # Schedules.
    "unknown_schedule": D(
        "schedules",
        "GET, PATCH /schedules/{id}, pause, resume, dispatch",
        "the core says INVALID_ARGUMENT `schedule X was not found`: a record that is not "
        "there is 404 `schedule_not_found`",
        ours=(404, "schedule_not_found"),
        theirs=(422, "MN_INVALID_ARGUMENT"),
    ),
    "bad_cron": D(
        "schedules",
        "POST /schedules...",
        "what the core refuses of a request is 400 `invalid_argument` with its reason",
        ours=(400, "invalid_argument"),
        theirs=(422, "MN_INVALID_ARGUMENT"),
    ),
    "no_event_type": D(
        "schedules",
        "POST /events",
        "bad requests are problems with a stable code",
        ours=(422, "validation_error"),
        theirs=(422, "detail"),
    ),
    # Deployments.
    "unknown_deployment": D(
        "deployments",
        "GET /deployments/{id_or_key}",
        "the gateway's stable codes name what is missing",
        ours=(404, "deployment_not_found"),
        theirs=(404, "MN_NOT_FOUND"),
    ),
    "unknown_deployment_action": D(
        "deployments",
        "POST /deployments/{id_or_key}/promote, rollback, pause, resume, fail",
        "a record that is not there is 404 `deployment_not_found` for every action (the "
        "core says INVALID_ARGUMENT for all but GetDeployment)",
        ours=(404, "deployment_not_found"),
        theirs=(422, "MN_INVALID_ARGUMENT"),
    ),
    "promotion_out_of_turn": D(
        "deployments",
        "POST /deployments/{id_or_key}/promote",
        "a change the record's state forbids is 409 `invalid_transition`",
        ours=(409, "invalid_transition"),
        theirs=(422, "MN_INVALID_ARGUMENT"),
    ),
    "no_rollback_target": D(
        "deployments",
        "POST /deployments/{id_or_key}/rollback",
        "what the core refuses of a request is 400 `invalid_argument` with its reason",
        ours=(400, "invalid_argument"),
        theirs=(422, "MN_INVALID_ARGUMENT"),
    ),
    "optional_rollback_body": D(
        "deployments",
        "POST /deployments/{id_or_key}/rollback",
        "every field of the body has a default, so the body may be left out",
        ours=(200, None),
        theirs=(422, "detail"),
    ),
    # Backups.
    "backup_of_live_job": D(
        "backups",
        "POST /jobs/{job_id}/backup",
        "a change the job's state forbids is 409 `invalid_transition`",
        ours=(409, "invalid_transition"),
        theirs=(412, "failed_precondition"),
    ),
    "unknown_job": D(
        "backups",
        "POST /jobs/{job_id}/backup",
        "the gateway's stable codes name what is missing",
        ours=(404, "job_not_found"),
        theirs=(404, "MN_NOT_FOUND"),
    ),
    "restored": D(
        "backups",
        "POST /jobs/restore",
        "a create is 201 Created and says where the new job is",
        ours=(201, None),
        location=True,
    ),
    "bad_backup": D(
        "backups",
        "POST /jobs/restore",
        "what the core refuses of a request is 400 `invalid_argument` with its reason",
        ours=(400, "invalid_argument"),
        theirs=(422, "MN_INVALID_ARGUMENT"),
    ),
    # Job definitions and runs.
    "created": D(
        "definitions",
        "POST /api/v2/jobs, /jobs/{id}/runs",
        "a create is 201 Created and says where the new record is",
        ours=(201, None),
        location=True,
    ),
    "schedule_created": D(
        "definitions",
        "POST /api/v2/jobs/{job_id}/schedules",
        "a create is 201 Created",
        ours=(201, None),
    ),
    "unknown_definition": D(
        "definitions",
        "/api/v2/jobs/{job_id}...",
        "the gateway's stable codes name what is missing",
        ours=(404, "job_definition_not_found"),
        theirs=(404, "MN_NOT_FOUND"),
    ),
    "unknown_run": D(
        "definitions",
        "/api/v2/runs/{run_id}...",
        "the gateway's stable codes name what is missing",
        ours=(404, "run_not_found"),
        theirs=(404, "MN_NOT_FOUND"),
    ),
    "unconfirmed_delete": D(
        "definitions",
        "DELETE /api/v2/jobs/{job_id}, /runs/{run_id}",
        "strict bodies: `confirmed` must be true, checked before the core is asked (the "
        "core's refusal reads as a failed execution in mn-api)",
        ours=(422, "validation_error"),
        theirs=(500, "MN_EXECUTION_FAILED"),
    ),
    "bad_definition_id": D(
        "definitions",
        "POST /api/v2/jobs",
        "strict bodies: an id the core would not take is a bad request, not a failure",
        ours=(422, "validation_error"),
        theirs=(500, "MN_EXECUTION_FAILED"),
    ),
    "pause_of_ended_run": D(
        "definitions",
        "POST /api/v2/runs/{run_id}/pause",
        "a run that has ended cannot be paused: 409 `invalid_transition`, not 404 (the "
        "core says NOT_FOUND `not running`)",
        ours=(409, "invalid_transition"),
        theirs=(404, "MN_NOT_FOUND"),
    ),
}


def daemon(graph_id: str = "parity", config: Any = None, **extra: Any) -> dict[str, Any]:
    """A job that runs until it is stopped (`config`: its worker's)."""
    agents = {"worker": config} if config else {}
    return {**pipeline_manifest(**agents), "graph_id": graph_id, "daemon": True, **extra}


def text(manifest: dict[str, Any]) -> str:
    return orjson.dumps(manifest).decode()


@pytest.fixture(scope="module")
def core() -> Iterator[FakeCoreProcess]:
    process = FakeCoreProcess(
        free_port(), "--release", "1.2.31", "--step-ms", "5", *CORE_CREDENTIALS
    ).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def clients(
    core: FakeCoreProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    ours = GatewayProcess(
        tmp_path_factory.mktemp("ours"),
        "grpc",
        core=core,
        MN_API_TOKEN=ADMIN,
        MN_API_READ_TOKENS=READ,
    )
    theirs = OfficialGatewayProcess(tmp_path_factory.mktemp("theirs"), core, ADMIN)
    ours.start()
    try:
        theirs.start()
        headers = {"Authorization": f"Bearer {ADMIN}"}
        with (
            httpx.Client(base_url=ours.base, headers=headers, timeout=30) as ours_client,
            httpx.Client(base_url=theirs.base, headers=headers, timeout=30) as theirs_client,
        ):
            yield ours_client, theirs_client
    finally:
        theirs.stop()
        ours.stop()


@pytest.fixture
def parity(clients: tuple[httpx.Client, httpx.Client]) -> Parity:
    return Parity(*clients, DIFFERENCES)


def _later_routes(client: httpx.Client) -> set[tuple[str, str]]:
    document = client.get("/openapi.json").json()
    return {
        (method.upper(), re.sub(r"\{[^}]+\}", "{}", path))
        for path, operations in document["paths"].items()
        if LATER.match(path)
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
    }


def test_the_table_holds_every_later_route_both_serve(parity: Parity) -> None:
    served = _later_routes(parity.ours) & _later_routes(parity.theirs)
    listed = {
        (method, re.sub(r"\{[^}]+\}", "{}", path))
        for routes in ROUTES.values()
        for method, path in routes
    }
    assert served == listed


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


def _bundle(manifest: dict[str, Any]) -> bytes:
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as bundle:
        bundle.writestr("manifest.json", text(manifest))
        bundle.writestr("payloads/input.txt", "hello")
    return data.getvalue()


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
    upload = _bundle(required)
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


def _status(client: httpx.Client, path: str) -> str:
    document = client.get(path).json()
    return str(document.get("job", document).get("status"))


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
        until(lambda c=client, j=job: _status(c, f"{V1}/jobs/{j['job_id']}") == "running")
    backup = f"{V1}/jobs/{{job_id}}/backup"
    parity.refused("POST", backup, "backup_of_live_job", ids)
    for client, job in zip((parity.ours, parity.theirs), ids, strict=True):
        client.post(f"{V1}/jobs/{job['job_id']}/pause")
        until(lambda c=client, j=job: _status(c, f"{V1}/jobs/{j['job_id']}") == "paused")
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
        until(lambda c=client, r=at: _status(c, f"{V2}/runs/{r['run_id']}") == "running")
    parity.same("GET", f"{one}/runs", ids)
    parity.same("GET", run, runs)
    parity.same("POST", f"{run}/pause", runs)
    parity.same("POST", f"{run}/resume", runs)
    parity.same("POST", f"{run}/cancel", runs)
    for client, at in zip((parity.ours, parity.theirs), runs, strict=True):
        until(lambda c=client, r=at: _status(c, f"{V2}/runs/{r['run_id']}") == "cancelled")
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
