"""The published SDK 1.2.31, as it is, through job definitions, runs and backups against
mn-fake-core in the 1.2.31 profile (its venv is built once and cached, as for the other
SDK witnesses)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support import CORE_TOKEN, FakeCoreProcess, free_port
from tests.witness.test_published_sdks import sdk_python

pytestmark = pytest.mark.slow

DRIVER = Path(__file__).with_name("sdk_jobs_driver.py")


def run_scenario(tmp_path: Path) -> dict[str, Any]:
    core = FakeCoreProcess(
        free_port(), "--release", "1.2.31", "--step-ms", "5", "--token", CORE_TOKEN
    ).start()
    try:
        done = subprocess.run(
            [str(sdk_python("1.2.31")), str(DRIVER), f"127.0.0.1:{core.port}", CORE_TOKEN],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
            # A home of its own: the SDK keeps a ledger of host resources under ~/.mn.
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith("MN_")},
                "HOME": str(tmp_path),
            },
        )
    finally:
        core.stop()
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_the_1_2_31_sdk_through_definitions_runs_and_backups(tmp_path: Path) -> None:
    out = run_scenario(tmp_path)
    assert out["create"]["job_id"] == "witness-stable" and out["create"]["version"] == 2
    assert out["create_again"] == {"code": "INTERNAL", "details": "job_already_exists"}
    assert [d["job_id"] for d in out["list"]["data"]] == ["witness-stable"]
    assert out["get"]["resolved_configuration"] == {"llm": {"temperature": 0}}
    assert out["update"]["job_name"] == "renamed"
    assert out["start"] == {
        "job_id": "witness-stable",
        "run_id": "witness-run-1",
        "status": "pending",
        "version": 2,
    }
    assert [r["run_id"] for r in out["runs"]["data"]] == ["witness-run-1"]
    assert out["run"]["job_id"] == "witness-stable" and out["run"]["status"] == "running"
    assert out["input"]["status"] == "accepted" and out["input"]["command_id"] == "k-1"
    assert out["input_refused"] == {
        "code": "INVALID_ARGUMENT",
        "details": '{:invalid_live_input, "$ is missing required fields: text"}',
    }
    # The run is a job of the first job service, under its run id.
    assert out["v1_job"] == "running"
    assert out["pause"] == {"run_id": "witness-run-1", "status": "paused", "version": 2}
    assert out["pause_again"] == {"code": "NOT_FOUND", "details": "job is not running"}
    assert out["backup"]["schema_version"] == "mn.backup.v2"
    assert out["backup"]["source"]["job_id"] == "witness-run-1"
    assert out["backup_files"] == ["manifest.json", "payloads/in/a.txt"]
    restored = out["restore"]
    assert restored["status"] == "paused" and restored["run_id"] == "again-1"
    assert restored["source_job_id"] == "witness-run-1"
    assert out["restore_refused"] == {
        "code": "INVALID_ARGUMENT",
        "details": '"backup is missing schema_version"',
    }
    assert out["resume"]["status"] == "resumed"
    assert out["archive_live"] == {
        "code": "FAILED_PRECONDITION",
        "details": '{:active_runs, ["witness-run-1"]}',
    }
    assert out["cancel"]["status"] in {"cancelled", "cancellation_pending"}
    assert out["delete_unconfirmed"] == {"code": "INTERNAL", "details": "confirmation_required"}
    assert out["delete_run"] == {"run_id": "witness-run-1", "status": "deleted", "version": 2}
    assert out["reset"]["data_generation"] == 2
    assert out["archive"]["status"] == "archived"
    assert out["start_archived"] == {"code": "INTERNAL", "details": "job_not_active"}
    assert out["delete"]["job_id"] == "witness-stable" and out["delete"]["status"] == "deleted"
    assert out["get_deleted"] == {
        "code": "NOT_FOUND",
        "details": "job witness-stable was not found",
    }
