"""The published CLI 1.2.32, as it is, through job definitions, runs and backups against
mn-fake-core in the 1.2.31 profile: `mn job create/definitions/inspect/start/runs/archive/
reset-data/delete`, `mn run status/pause/resume/cancel/delete`, `mn job backup/restore`
(the CLI is run as tests/support/published_cli.py says)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import CORE_TOKEN, FakeCoreProcess, free_port
from tests.support.published_cli import PublishedCli, bundle, field

pytestmark = pytest.mark.slow


@pytest.fixture
def mn(tmp_path: Path) -> Iterator[PublishedCli]:
    core = FakeCoreProcess(
        free_port(), "--release", "1.2.31", "--step-ms", "5", "--token", CORE_TOKEN
    )
    cli = PublishedCli(tmp_path / "cli", f"127.0.0.1:{core.port}")
    core.start()
    try:
        yield cli
    finally:
        cli.close()
        core.stop()


def test_the_1_2_32_cli_through_definitions_and_runs(mn: PublishedCli, tmp_path: Path) -> None:
    definition = bundle(
        tmp_path / "bundle", graph_id="daemon-hello", job_name="daemon hello", daemon=True
    )
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"llm": {"temperature": 0}}))
    inputs = tmp_path / "inputs.json"
    inputs.write_text(json.dumps({"topic": "quarterly report"}))

    created = mn.ok("job", "create", definition, "--job-id", "demo-stable", "--config", config)
    assert "Job create successful." in created and field(created, "Job ID") == "demo-stable"
    listed = mn.json("job", "definitions", "--include-archived")
    assert [d["job_id"] for d in listed["data"]] == ["demo-stable"]
    inspected = mn.json("job", "inspect", "demo-stable")
    assert inspected["resolved_configuration"] == {"llm": {"temperature": 0}}
    started = mn.ok("job", "start", "demo-stable", "--run-id", "demo-run-1", "--inputs", inputs)
    assert field(started, "Run ID") == "demo-run-1"
    deadline = time.monotonic() + 20
    while (status := mn.json("run", "status", "demo-run-1"))["status"] != "running":
        assert time.monotonic() < deadline, status
    assert status["job_id"] == "demo-stable"
    runs = mn.json("job", "runs", "demo-stable")
    assert [r["run_id"] for r in runs["data"]] == ["demo-run-1"]
    assert mn.json("run", "pause", "demo-run-1")["status"] == "paused"

    # A paused run is a paused job: it backs up, and restores as a new paused job.
    assert "Job backup successful." in mn.ok("job", "backup", "demo-run-1", "-o", tmp_path / "b")
    [backup] = (tmp_path / "b").glob("*.mnbackup.zip")
    restored = mn.ok("job", "restore", "daemon-hello", "-i", backup)
    assert "Status: paused" in restored and field(restored, "Original job") == "demo-run-1"

    assert mn.json("run", "resume", "demo-run-1")["status"] == "resumed"
    assert mn.json("run", "cancel", "demo-run-1")["status"] in {
        "cancelled",
        "cancellation_pending",
    }
    deadline = time.monotonic() + 20
    while mn.json("run", "status", "demo-run-1")["status"] != "cancelled":
        assert time.monotonic() < deadline
    assert mn.json("run", "delete", "demo-run-1", "-y")["status"] == "deleted"
    assert mn.json("job", "archive", "demo-stable")["status"] == "archived"
    assert mn.json("job", "reset-data", "demo-stable", "-y")["data_generation"] == 2
    deleted = mn.json("job", "delete", "demo-stable", "-y")
    assert deleted["job_id"] == "demo-stable" and deleted["status"] == "deleted"
    assert mn.json("job", "definitions", "--include-archived")["data"] == []
