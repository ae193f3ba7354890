"""The simulated job backups (JobService.ExportJobBackup and RestoreJobBackup, 1.2.5 and
newer): a paused job written out with its history and bundle, and written back as a new
paused job."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.adapters.memory.services import CoreRefusal
from mn_api.adapters.memory.services._base import JOB_V1
from tests.support import FakeClock

EXPORT = JOB_V1 + "ExportJobBackup"
RESTORE = JOB_V1 + "RestoreJobBackup"
MANIFEST = {
    "manifest_version": "1",
    "graph_id": "daemon-hello",
    "daemon": True,
    "nodes": [
        {"node_id": "router", "agent_type": "router"},
        {"node_id": "worker", "agent_type": "executor", "config": {"model": "small"}},
    ],
    "edges": [{"from_node": "router", "to_node": "worker", "message_type": "task"}],
    "entrypoints": ["router"],
    "metadata": {"mn_cli": {"blueprint_id": "daemon-hello", "blueprint_run_id": "run-1"}},
}


async def _paused_job(runtime: InMemoryRuntime) -> str:
    ack = await runtime.submit_job(orjson.dumps(MANIFEST).decode(), {"in/a.txt": b"alpha"})
    runtime.run_until_idle()
    await runtime.pause_job(ack.job_id)
    return ack.job_id


async def _refusal(runtime: InMemoryRuntime, method: str, **fields: Any) -> tuple[str, str]:
    with pytest.raises(CoreRefusal) as refused:
        await runtime.services.call(method, fields)
    return refused.value.code, refused.value.message


async def test_a_paused_job_is_written_out_with_its_history_and_bundle(
    memory_runtime: InMemoryRuntime,
) -> None:
    job_id = await _paused_job(memory_runtime)
    answer = await memory_runtime.services.call(EXPORT, {"job_id": job_id})
    backup = orjson.loads(answer["backup_json"])
    assert answer["version"] == 1 and backup["version"] == 1
    assert backup["schema_version"] == "mn.backup.v2"
    assert backup["source"] == {
        "job_id": job_id,
        "run_id": "run-1",
        "blueprint_id": "daemon-hello",
        "graph_id": "daemon-hello",
        "submitted_at": backup["runtime"]["job"]["submitted_at"],
        "status": "paused",
    }
    assert backup["target_policy"]["restore_mode"] == "clone"
    assert backup["sections"]["bundle/manifest.json"] is True
    job = backup["runtime"]["job"]
    assert job["job_id"] == job_id and job["status"] == "paused"
    assert job["manifest"]["nodes"][1]["config"] == {"model": "small"}
    types = [event["type"] for event in backup["runtime"]["events"]]
    assert types[0] == "job_pending" and types[-1] == "job_paused"
    files = answer["bundle_files"]
    assert sorted(files) == ["manifest.json", "payloads/in/a.txt"] == backup["bundle"]["files"]
    assert backup["bundle"]["file_count"] == 2
    assert files["payloads/in/a.txt"] == b"alpha"
    assert orjson.loads(files["manifest.json"])["graph_id"] == "daemon-hello"


async def test_only_a_paused_job_is_written_out(memory_runtime: InMemoryRuntime) -> None:
    ack = await memory_runtime.submit_job(orjson.dumps(MANIFEST).decode(), {})
    assert await _refusal(memory_runtime, EXPORT, job_id=ack.job_id) == (
        "FAILED_PRECONDITION",
        f'"job {ack.job_id} must be paused before backup; current status is pending"',
    )
    assert await _refusal(memory_runtime, EXPORT, job_id="ghost") == (
        "NOT_FOUND",
        '"job ghost was not found"',
    )
    assert await _refusal(memory_runtime, EXPORT, job_id="") == (
        "INVALID_ARGUMENT",
        '"job_id is required"',
    )


async def test_a_backup_comes_back_as_a_new_paused_job(memory_runtime: InMemoryRuntime) -> None:
    runtime = memory_runtime
    source = await _paused_job(runtime)
    exported = await runtime.services.call(EXPORT, {"job_id": source})
    answer = await runtime.services.call(
        RESTORE,
        {
            "backup_json": exported["backup_json"],
            "bundle_files": exported["bundle_files"],
            "blueprint_id": "",
            "run_id": "",
        },
    )
    result = orjson.loads(answer["result_json"])
    new_id = result["job_id"]
    assert new_id != source and new_id.startswith("dh-")
    assert result["run_id"] == "restore-1" and result["blueprint_id"] == "daemon-hello"
    assert result["status"] == "paused" and result["version"] == 1
    assert result["source_job_id"] == source and result["source_run_id"] == "run-1"
    provenance = result["restore_provenance"]
    assert provenance["schema_version"] == "mn.backup.v2"
    assert provenance["source"]["job_id"] == source and provenance["source"]["run_id"] == "run-1"
    assert provenance["target"] == {
        "job_id": new_id,
        "run_id": "restore-1",
        "blueprint_id": "daemon-hello",
    }
    assert result["recovery"] == {
        "job_id": new_id,
        "action": "paused_for_review",
        "reason": "job was restored from a backup and must remain paused",
    }
    restored = runtime.job_record(new_id)
    assert restored.status.value == "paused"
    assert restored.payloads == {"in/a.txt": b"alpha"}
    assert restored.manifest.metadata["mn_cli"] == {
        "blueprint_id": "daemon-hello",
        "blueprint_run_id": "restore-1",
    }
    events = [orjson.loads(raw) for raw in restored.events]
    assert events[-1]["type"] == "job_restored_from_backup"
    assert events[-1]["source_job_id"] == source and events[-1]["new_job_id"] == new_id
    # The old ids are rewritten to the new ones throughout the history.
    assert all(e["job_id"] == new_id for e in events[:-1])
    assert source not in str(events[:-1])
    # Resumed, it runs again.
    await runtime.resume_job(new_id)
    runtime.run_until_idle()
    assert runtime.job_record(new_id).status.value == "running"
    again = orjson.loads(
        (
            await runtime.services.call(
                RESTORE,
                {
                    "backup_json": exported["backup_json"],
                    "bundle_files": exported["bundle_files"],
                    "blueprint_id": "other-blueprint",
                    "run_id": "chosen-run",
                },
            )
        )["result_json"]
    )
    assert again["blueprint_id"] == "other-blueprint" and again["run_id"] == "chosen-run"
    assert again["job_id"].startswith("ob-")


def _backup(**changes: Any) -> dict[str, Any]:
    backup: dict[str, Any] = {
        "schema_version": "mn.backup.v2",
        "source": {"job_id": "old-1"},
        "runtime": {"job": {"job_id": "old-1", "graph_id": "g"}, "events": []},
    }
    backup.update(changes)
    return backup


@pytest.mark.parametrize(
    ("backup", "files", "message"),
    [
        ({"schema_version": "mn.backup.v2"}, {}, '"backup is missing runtime state"'),
        ({"runtime": {}}, {}, '"backup is missing schema_version"'),
        (
            _backup(schema_version="mn.backup.v1"),
            {},
            '"unsupported backup schema \\"mn.backup.v1\\""',
        ),
        (_backup(runtime={"events": []}), {}, '"backup is missing runtime/job.json"'),
        (_backup(source={}, runtime={"job": {}}), {}, '"backup is missing source job_id"'),
        (
            _backup(runtime={"job": {"job_id": "old-1"}}),
            {},
            '"restore requires a target blueprint_id"',
        ),
        (_backup(), {"payloads/a.txt": b"x"}, '"bundle is missing manifest.json"'),
        (["not", "an", "object"], {}, '"invalid backup payload"'),
    ],
)
async def test_a_backup_the_core_cannot_restore_is_refused_in_its_words(
    memory_runtime: InMemoryRuntime, backup: Any, files: dict[str, bytes], message: str
) -> None:
    refusal = await _refusal(
        memory_runtime,
        RESTORE,
        backup_json=orjson.dumps(backup).decode(),
        bundle_files=files,
        blueprint_id="",
        run_id="",
    )
    assert refusal == ("INVALID_ARGUMENT", message)


async def test_backup_json_that_is_no_json_is_refused(memory_runtime: InMemoryRuntime) -> None:
    code, text = await _refusal(memory_runtime, RESTORE, backup_json="{nope", bundle_files={})
    assert code == "INVALID_ARGUMENT" and text.startswith("backup_json must be valid JSON: ")


async def test_1_2_5_writes_and_takes_the_first_schema(clock: FakeClock) -> None:
    runtime = InMemoryRuntime(release="1.2.5", auto_run=False, clock=clock)
    job_id = await _paused_job(runtime)
    exported = await runtime.services.call(EXPORT, {"job_id": job_id})
    assert orjson.loads(exported["backup_json"])["schema_version"] == "mn.backup.v1"
    restored = await runtime.services.call(
        RESTORE, {"backup_json": exported["backup_json"], "bundle_files": exported["bundle_files"]}
    )
    new_id = orjson.loads(restored["result_json"])["job_id"]
    # 1.2.5 makes job ids of the blueprint id, the time and 12 hex characters.
    assert (
        new_id.startswith("daemon-hello-") and runtime.job_record(new_id).status.value == "paused"
    )


@pytest.mark.parametrize("release", ["1.1", "d26bef71"])
async def test_older_cores_have_no_backups(release: str) -> None:
    runtime = InMemoryRuntime(release=release, auto_run=False)
    assert (await _refusal(runtime, EXPORT, job_id="x"))[0] == "UNIMPLEMENTED"
