"""Every later route on every core release the gateway knows, in process and over gRPC to
the simulated core: where the release offers the service, a minimal call works (a list,
a create then a read, an action on a record made first); where it does not (1.1 and
d26bef71: none of them; 1.2.5: operations and job definitions), the route answers 501
`not_supported`. One row per route."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from mn_api.adapters.grpc.runtime import GrpcRuntime
from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.config import Settings
from mn_api.container import build_container
from mn_api.entrypoints.fake_core import FakeCore
from mn_api.entrypoints.http import create_app
from tests.support import (
    CORE_ADMIN_TOKEN,
    CORE_TOKEN,
    asgi_client,
    check_problem,
    pipeline_manifest,
)
from tests.support.parity import V1, V2, later_routes, unnamed

pytestmark = pytest.mark.asyncio(loop_scope="module")

# The later services each release offers (CoreRelease.later_services).
ALL = {
    "resources",
    "services",
    "schedules",
    "deployments",
    "backups",
    "definitions",
    "operations",
    "nodes",
}
OFFERED: dict[str, set[str]] = {
    "1.1": set(),
    "1.2.5": ALL - {"definitions", "operations"},
    "1.2.31": ALL,
    "d26bef71": set(),
}
ENVIRONMENTS = [f"{kind}-{release}" for release in OFFERED for kind in ("memory", "grpc")]
# What a path names where the release has no such records to make.
PLACEHOLDERS = {
    "schedule_id": "sched_none",
    "id_or_key": "none",
    "job_id": "none",
    "run_id": "none",
    "name": "none",
    "kind": "clear_jobs",
    "operation_id": "op-none",
    "node_name": "mn2@127.0.0.1",
}
JOIN = "profiles-join-token"
_serial = itertools.count(1)


@dataclass(frozen=True)
class Gateway:
    client: httpx.AsyncClient
    release: str
    # What requests name that the gateway's setting gives (the second node's port).
    context: dict[str, Any]


Client = httpx.AsyncClient
Made = dict[str, Any]


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_serial)}"


def daemon(**agents: dict[str, Any]) -> dict[str, Any]:
    return {**pipeline_manifest(**agents), "graph_id": "profiles", "daemon": True}


async def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def until_status(client: Client, path: str, wanted: str) -> None:
    async with asyncio.timeout(15):
        while True:
            document = (await client.get(path)).json()
            if document.get("job", document).get("status") == wanted:
                return
            await asyncio.sleep(0.01)


# -- the records a row's path names, made first where the release has the service ----------


async def schedule(client: Client) -> Made:
    body = {
        "manifest": pipeline_manifest(),
        "schedule": {"kind": "periodic", "crons": ["0 2 * * *"]},
    }
    return {
        "schedule_id": (await ok(await client.post(f"{V1}/schedules", json=body)))["schedule_id"]
    }


async def deployment(client: Client) -> Made:
    key = unique("profiles")
    await ok(await client.post(f"{V1}/deployments", json={"manifest": daemon(), "key": key}))
    return {"id_or_key": key}


async def canary(client: Client) -> Made:
    made = await deployment(client)
    body = {
        "manifest": daemon(worker={"model": "larger"}),
        "key": made["id_or_key"],
        "policy": {"strategy": "canary", "canary": 1},
    }
    assert (await ok(await client.post(f"{V1}/deployments", json=body)))["status"] == (
        "awaiting_promotion"
    )
    return made


async def paused_job(client: Client) -> Made:
    job_id = (await ok(await client.post(f"{V1}/jobs", json={"manifest": daemon()}), 201))["job_id"]
    await until_status(client, f"{V1}/jobs/{job_id}", "running")
    await ok(await client.post(f"{V1}/jobs/{job_id}/pause"))
    await until_status(client, f"{V1}/jobs/{job_id}", "paused")
    return {"job_id": job_id}


async def backup(client: Client) -> Made:
    job = await paused_job(client)
    exported = await ok(await client.post(f"{V1}/jobs/{job['job_id']}/backup"))
    return {"backup_json": exported["backup_json"], "bundle_files": exported["bundle_files"]}


async def definition(client: Client) -> Made:
    job_id = unique("profiles")
    body = {"manifest": daemon(), "job_id": job_id}
    await ok(await client.post(f"{V2}/jobs", json=body), 201)
    return {"job_id": job_id}


async def run(client: Client) -> Made:
    made = await definition(client)
    started = await ok(await client.post(f"{V2}/jobs/{made['job_id']}/runs", json={}), 201)
    await until_status(client, f"{V2}/runs/{started['run_id']}", "running")
    return {**made, "run_id": started["run_id"]}


async def ended_run(client: Client) -> Made:
    made = await run(client)
    await ok(await client.post(f"{V2}/runs/{made['run_id']}/cancel"))
    await until_status(client, f"{V2}/runs/{made['run_id']}", "cancelled")
    return made


async def paused_run(client: Client) -> Made:
    made = await run(client)
    await ok(await client.post(f"{V2}/runs/{made['run_id']}/pause"))
    return made


def restore(made: Made) -> dict[str, Any]:
    """The backup made first (none where the release has no backups)."""
    return {
        "backup_json": made.get("backup_json", "{}"),
        "bundle_files": made.get("bundle_files", {}),
    }


async def operation(client: Client) -> Made:
    started = await ok(await client.post(f"{V1}/operations/clear_jobs", json={}))
    return {"operation_id": started["operation_id"]}


def join(made: Made) -> dict[str, Any]:
    return {"host": "127.0.0.1", "token": JOIN, "grpc_port": made["port"]}


@dataclass(frozen=True)
class Row:
    """A route, the service it belongs to, and its minimal call: the records its path
    names (`make`), its body (or a function of what was made), the status it answers and
    the key its document has."""

    group: str
    method: str
    path: str
    body: Any = None
    make: Callable[[Client], Awaitable[Made]] | None = None
    status: int = 200
    key: str | tuple[str, ...] = "version"
    stream: bool = False

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


SCHEDULE = {"manifest": pipeline_manifest(), "schedule": {"crons": ["0 2 * * *"]}}
TRIGGER = {"manifest": pipeline_manifest(), "schedule": {"trigger": {"event_type": "e"}}}
DELAYED = {"manifest": pipeline_manifest(), "schedule": {"delay_ms": 60_000}}
CHECK = {"required_services": [{"name": "db", "required": False}]}
S, D = f"{V1}/schedules/{{schedule_id}}", f"{V1}/deployments/{{id_or_key}}"
J, R = f"{V2}/jobs/{{job_id}}", f"{V2}/runs/{{run_id}}"
OP, N = f"{V1}/operations/{{operation_id}}", f"{V1}/nodes/{{node_name}}"
ROWS = [
    Row("resources", "GET", f"{V1}/resource", key="limits"),
    Row("resources", "POST", f"{V1}/resource", {"cpu": 100}, key="limits"),
    Row("resources", "PUT", f"{V1}/resource", {"cpu": 100}, key="limits"),
    Row("services", "GET", f"{V1}/services", key="services"),
    Row("services", "GET", f"{V1}/services/{{name}}/resolve", key="services"),
    Row("services", "POST", f"{V1}/services:check", CHECK, key="results"),
    Row("services", "POST", f"{V1}/services/check", CHECK, key="results"),
    Row("schedules", "POST", f"{V1}/schedules", SCHEDULE, key="schedule_id"),
    Row("schedules", "POST", f"{V1}/schedules/periodic", SCHEDULE, key="schedule_id"),
    Row("schedules", "POST", f"{V1}/schedules/delayed", DELAYED, key="schedule_id"),
    Row("schedules", "GET", f"{V1}/schedules", key="data"),
    Row("schedules", "GET", S, make=schedule, key="schedule_id"),
    Row("schedules", "PATCH", S, {"attrs": {"name": "renamed"}}, schedule, key="schedule_id"),
    Row("schedules", "POST", f"{S}/pause", make=schedule, key="schedule_id"),
    Row("schedules", "POST", f"{S}/resume", make=schedule, key="schedule_id"),
    Row("schedules", "POST", f"{S}/dispatch", {}, schedule, key="dispatched"),
    Row("schedules", "DELETE", S, make=schedule, key="schedule_id"),
    Row("schedules", "POST", f"{V1}/triggers", TRIGGER, key="schedule_id"),
    Row("schedules", "GET", f"{V1}/triggers", key="data"),
    Row("schedules", "DELETE", f"{V1}/triggers/{{schedule_id}}", make=schedule, key="status"),
    Row("schedules", "POST", f"{V1}/events", {"event_type": "e"}, key="event"),
    Row("schedules", "GET", f"{V1}/events", key="data"),
    Row("deployments", "POST", f"{V1}/deployments", {"manifest": daemon()}, key="deployment"),
    Row("deployments", "GET", f"{V1}/deployments", key="data"),
    Row("deployments", "GET", D, make=deployment, key="versions"),
    Row("deployments", "POST", f"{D}/promote", make=canary, key="deployment"),
    Row("deployments", "POST", f"{D}/rollback", {"version": "1"}, deployment, key="deployment"),
    Row("deployments", "POST", f"{D}/pause", make=deployment, key="deployment_id"),
    Row("deployments", "POST", f"{D}/resume", make=deployment, key="deployment_id"),
    Row("deployments", "POST", f"{D}/fail", make=deployment, key="deployment_id"),
    Row("backups", "POST", f"{V1}/jobs/{{job_id}}/backup", make=paused_job, key="backup_json"),
    Row("backups", "POST", f"{V1}/jobs/restore", restore, backup, 201, "job_id"),
    Row("definitions", "POST", f"{V2}/jobs", {"manifest": daemon()}, status=201, key="job_id"),
    Row("definitions", "GET", f"{V2}/jobs", key="data"),
    Row("definitions", "GET", J, make=definition, key="job_id"),
    Row("definitions", "PATCH", J, {"attrs": {"job_name": "x"}}, definition, key="job_id"),
    Row("definitions", "DELETE", J, {"confirmed": True}, definition, key="status"),
    Row("definitions", "POST", f"{J}/archive", make=definition, key="status"),
    Row("definitions", "POST", f"{J}/data:reset", make=definition, key="data_generation"),
    Row("definitions", "POST", f"{J}/runs", {}, definition, 201, "run_id"),
    Row("definitions", "GET", f"{J}/runs", make=run, key="data"),
    Row("definitions", "POST", f"{J}/schedules", SCHEDULE, definition, 201, "schedule_id"),
    Row("definitions", "GET", R, make=run, key="run_id"),
    Row("definitions", "POST", f"{R}/pause", make=run, key="status"),
    Row("definitions", "POST", f"{R}/resume", make=paused_run, key="status"),
    Row("definitions", "POST", f"{R}/cancel", make=run, key="status"),
    Row("definitions", "DELETE", R, {"confirmed": True}, ended_run, key="status"),
    Row("operations", "POST", f"{V1}/operations/{{kind}}", {}, key="operation_id"),
    Row("operations", "GET", OP, make=operation, key="items"),
    Row("operations", "GET", f"{OP}/events", make=operation, stream=True),
    # On 1.2.5 (no operations) reconcile and drain answer the core's result of the call.
    Row("nodes", "POST", f"{N}/reconcile", {"dry_run": True}, key=("kind", "checked")),
    Row("nodes", "POST", f"{N}/drain", {"dry_run": True}, key=("kind", "actions")),
    Row("nodes", "POST", f"{N}/undrain", {"mark_eligible": True}, key="node_state"),
    Row("nodes", "POST", f"{N}/maintenance", {"enabled": False}, key="maintenance"),
    Row("nodes", "GET", f"{N}/drain", key="node_state"),
    Row("nodes", "POST", f"{V1}/system/cluster/nodes:add", join, key="handshake"),
    Row("nodes", "POST", f"{V1}/system/cluster/nodes:join", join, key="handshake"),
]


@pytest_asyncio.fixture(scope="module", params=ENVIRONMENTS, loop_scope="module")
async def gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Gateway]:
    """The gateway on the release's runtime: in process (memory), or over gRPC to the
    simulated core serving that runtime (grpc)."""
    kind, release = request.param.split("-", 1)
    home: Path = tmp_path_factory.mktemp(request.param)
    settings = Settings(
        runtime="memory",
        bundle_dir=home / "bundles",
        log_path=str(home / "log"),
        cluster_join_hosts_raw="127.0.0.1",
    )
    # Two nodes (the second to drain and to join) where the release simulates a cluster.
    nodes = 1 if release == "1.1" else 2
    runtime = InMemoryRuntime(release=release, step_seconds=0.002, nodes=nodes)
    await runtime.start()
    core = FakeCore(runtime, token=CORE_TOKEN, admin_token=CORE_ADMIN_TOKEN, join_token=JOIN)
    port = await core.start("127.0.0.1", ports=[0] * nodes)
    remote = GrpcRuntime(
        f"127.0.0.1:{port}", timeout_seconds=5, auth_token=CORE_TOKEN, admin_token=CORE_ADMIN_TOKEN
    )
    try:
        async with asgi_client(settings, runtime if kind == "memory" else remote) as client:
            yield Gateway(client, release, {"port": list(core.ports.values())[-1]})
    finally:
        await remote.close()
        await core.stop(grace=None)
        await runtime.close()


@pytest.mark.parametrize("row", ROWS, ids=str)
async def test_each_later_route(gateway: Gateway, row: Row) -> None:
    client = gateway.client
    offered = row.group in OFFERED[gateway.release]
    made = await row.make(client) if offered and row.make is not None else {}
    made = {**PLACEHOLDERS, **gateway.context, **made}
    body = row.body(made) if callable(row.body) else row.body
    path = row.path.format(**made)
    answer = await client.request(row.method, path, json=body)
    if not offered:
        assert answer.status_code == 501, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert check_problem(answer.json())["error"] == "not_supported"
        return
    assert answer.status_code == row.status, answer.text
    if row.stream:
        assert answer.headers["content-type"].startswith("text/event-stream")
        assert "event: operation_created" in answer.text
        return
    keys = row.key if isinstance(row.key, tuple) else (row.key,)
    assert any(key in answer.json() for key in keys), answer.text


async def test_every_later_route_has_its_row(tmp_path: Path) -> None:
    """The rows name every later route of the gateway's API document (the same on every
    release and runtime)."""
    settings = Settings(runtime="memory", bundle_dir=tmp_path, log_path=str(tmp_path / "log"))
    document = create_app(build_container(settings)).openapi()
    assert later_routes(document) == {(row.method, unnamed(row.path)) for row in ROWS}
