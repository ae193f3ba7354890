"""Job backups over HTTP: POST /api/v1/jobs/{job_id}/backup and POST /api/v1/jobs/restore,
on cores with backups (1.2.5, 1.2.31) and without (1.1, d26bef71)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.config import Settings
from tests.support import asgi_client, check_problem, daemon_manifest

API = "/api/v1"
MANIFEST = daemon_manifest()


def _problem(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = check_problem(response.json())
    assert body["error"] == error, body
    return body


async def _paused_job(client: httpx.AsyncClient, runtime: InMemoryRuntime) -> str:
    submitted = await client.post(
        f"{API}/jobs",
        json={"manifest": MANIFEST, "payloads_base64": {"in/a.bin": "AAEC"}},
    )
    job_id = submitted.json()["job_id"]
    runtime.run_until_idle()
    assert (await client.post(f"{API}/jobs/{job_id}/pause")).status_code == 200
    return job_id


async def test_a_paused_job_backed_up_and_restored(
    client: httpx.AsyncClient, memory_runtime: InMemoryRuntime
) -> None:
    job_id = await _paused_job(client, memory_runtime)
    exported = await client.post(f"{API}/jobs/{job_id}/backup")
    assert exported.status_code == 200, exported.text
    answer = exported.json()
    assert answer["job_id"] == job_id and answer["encoding"] == "base64"
    assert answer["version"] == 1
    backup = orjson.loads(answer["backup_json"])
    assert backup["schema_version"] == "mn.backup.v2"
    assert backup["runtime"]["job"]["status"] == "paused"
    files = answer["bundle_files"]
    assert sorted(files) == ["manifest.json", "payloads/in/a.bin"]
    assert base64.b64decode(files["payloads/in/a.bin"]) == b"\x00\x01\x02"
    assert orjson.loads(base64.b64decode(files["manifest.json"]))["graph_id"] == "daemon-hello"
    restored = await client.post(
        f"{API}/jobs/restore",
        json={"backup_json": answer["backup_json"], "bundle_files": files, "run_id": "again-1"},
    )
    assert restored.status_code == 201, restored.text
    result = restored.json()
    new_id = result["job_id"]
    assert restored.headers["location"] == f"{API}/jobs/{new_id}"
    assert result["status"] == "paused" and result["source_job_id"] == job_id
    assert result["run_id"] == "again-1" and result["version"] == 1
    assert result["recovery"]["action"] == "paused_for_review"
    job = (await client.get(f"{API}/jobs/{new_id}")).json()
    assert job["job"]["status"] == "paused"
    assert (await client.post(f"{API}/jobs/{new_id}/resume")).status_code == 200


async def test_backups_the_core_refuses(
    client: httpx.AsyncClient, memory_runtime: InMemoryRuntime
) -> None:
    submitted = await client.post(f"{API}/jobs", json={"manifest": MANIFEST})
    running = submitted.json()["job_id"]
    refused = _problem(await client.post(f"{API}/jobs/{running}/backup"), 409, "invalid_transition")
    assert "must be paused before backup" in refused["detail"]
    _problem(await client.post(f"{API}/jobs/ghost-1/backup"), 404, "job_not_found")
    wrong = orjson.dumps({"schema_version": "mn.backup.v1", "runtime": {}}).decode()
    unreadable = await client.post(f"{API}/jobs/restore", json={"backup_json": wrong})
    assert _problem(unreadable, 400, "invalid_argument")["detail"] == (
        'unsupported backup schema "mn.backup.v1"'
    )
    _problem(await client.post(f"{API}/jobs/restore", json={}), 422, "validation_error")
    garbled = {"backup_json": "{}", "bundle_files": {"manifest.json": "%%%"}}
    _problem(await client.post(f"{API}/jobs/restore", json=garbled), 422, "validation_error")
    escaping = {"backup_json": "{}", "bundle_files": {"../manifest.json": "e30="}}
    _problem(await client.post(f"{API}/jobs/restore", json=escaping), 422, "unsafe_payload_path")


async def test_1_2_5_backs_up_with_its_own_schema(
    settings_factory: Callable[..., Settings],
) -> None:
    runtime = InMemoryRuntime(release="1.2.5", auto_run=False)
    async with asgi_client(settings_factory(), runtime) as client:
        job_id = await _paused_job(client, runtime)
        exported = (await client.post(f"{API}/jobs/{job_id}/backup")).json()
        assert orjson.loads(exported["backup_json"])["schema_version"] == "mn.backup.v1"
        restored = await client.post(
            f"{API}/jobs/restore",
            json={"backup_json": exported["backup_json"], "bundle_files": exported["bundle_files"]},
        )
        assert restored.status_code == 201 and restored.json()["run_id"] == "restore-1"


@pytest.mark.parametrize("release", ["1.1", "d26bef71"])
async def test_cores_without_backups_answer_501(
    settings_factory: Callable[..., Settings], release: str
) -> None:
    runtime = InMemoryRuntime(release=release, auto_run=False)
    async with asgi_client(settings_factory(), runtime) as client:
        _problem(await client.post(f"{API}/jobs/x/backup"), 501, "not_supported")
        restore = await client.post(f"{API}/jobs/restore", json={"backup_json": "{}"})
        _problem(restore, 501, "not_supported")
