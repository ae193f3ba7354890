"""The published CLI 1.2.32, as it is, through job definitions, runs and backups against
mn-fake-core in the 1.2.31 profile: `mn job create/definitions/inspect/start/runs/archive/
reset-data/delete`, `mn run status/pause/resume/cancel/delete`, `mn job backup/restore`.

The CLI is installed from PyPI into a cached virtual environment and run with a home,
working folder and environment of its own (no `~/.mn`, no `.env`, no update check), and a
`docker` that finds no containers first on its PATH (its local clean-up asks Docker)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import CORE_TOKEN, FakeCoreProcess, cached_venv, free_port

pytestmark = pytest.mark.slow

MANIFEST = {
    "manifest_version": "1",
    "graph_id": "daemon-hello",
    "job_name": "daemon hello",
    "daemon": True,
    "nodes": [
        {"node_id": "router", "agent_type": "router"},
        {"node_id": "worker", "agent_type": "executor"},
    ],
    "edges": [{"from_node": "router", "to_node": "worker", "message_type": "task"}],
    "entrypoints": ["router"],
}


class Mn:
    """`mn` run against one core, in a folder of its own."""

    def __init__(self, home: Path, target: str) -> None:
        venv = cached_venv("mirrorneuron-cli-1.2.32", "mirrorneuron-cli==1.2.32")
        self.mn = venv / "bin" / "mn"
        stub = home / "bin" / "docker"
        stub.parent.mkdir(parents=True)
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
        (home / "cwd").mkdir()
        self.cwd = home / "cwd"
        self.log = home / "cli.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MN_")}
        self.env.update(
            PATH=os.pathsep.join([str(stub.parent), str(venv / "bin"), "/usr/bin:/bin"]),
            HOME=str(home),
            MN_GRPC_TARGET=target,
            MN_GRPC_AUTH_TOKEN=CORE_TOKEN,
            MN_GRPC_TIMEOUT_SECONDS="10",
            MN_CLI_LOG_PATH=str(self.log),
            MN_CLI_OUTPUT="plain",
            NO_COLOR="1",
            TERM="dumb",
            COLUMNS="200",
            MN_DISABLE_UPDATE_CHECK="1",
            MN_JOB_MONITOR_DISABLE_API_STREAM="1",
            MN_SYNCTHING_ENABLED="0",
            MN_RUN_BACKGROUND_EVENT_RELAY="0",
        )

    def __call__(self, *argv: Any) -> str:
        done = subprocess.run(
            [str(self.mn), "--debug", *map(str, argv)],
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        out = done.stdout + done.stderr
        assert done.returncode == 0 and "Error" not in out, (argv, done.returncode, out)
        return out

    def json(self, *argv: Any) -> Any:
        out = self(*argv)
        return json.loads(out[out.index("{") :])


def _field(out: str, name: str) -> str:
    found = re.search(rf"^{name}: (\S+)$", out, re.MULTILINE)
    assert found is not None, out
    return found.group(1)


@pytest.fixture
def mn(tmp_path: Path) -> Iterator[Mn]:
    core = FakeCoreProcess(
        free_port(), "--release", "1.2.31", "--step-ms", "5", "--token", CORE_TOKEN
    ).start()
    try:
        yield Mn(tmp_path / "home", f"127.0.0.1:{core.port}")
    finally:
        core.stop()


def test_the_1_2_32_cli_through_definitions_and_runs(mn: Mn, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    (bundle / "payloads").mkdir(parents=True)
    (bundle / "manifest.json").write_text(json.dumps(MANIFEST))
    (bundle / "payloads" / "input.txt").write_text("hello\n")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"llm": {"temperature": 0}}))
    inputs = tmp_path / "inputs.json"
    inputs.write_text(json.dumps({"topic": "quarterly report"}))

    created = mn("job", "create", bundle, "--job-id", "demo-stable", "--config", config)
    assert "Job create successful." in created and _field(created, "Job ID") == "demo-stable"
    listed = mn.json("job", "definitions", "--include-archived")
    assert [d["job_id"] for d in listed["data"]] == ["demo-stable"]
    inspected = mn.json("job", "inspect", "demo-stable")
    assert inspected["resolved_configuration"] == {"llm": {"temperature": 0}}
    started = mn("job", "start", "demo-stable", "--run-id", "demo-run-1", "--inputs", inputs)
    assert _field(started, "Run ID") == "demo-run-1"
    deadline = time.monotonic() + 20
    while (status := mn.json("run", "status", "demo-run-1"))["status"] != "running":
        assert time.monotonic() < deadline, status
    assert status["job_id"] == "demo-stable"
    runs = mn.json("job", "runs", "demo-stable")
    assert [r["run_id"] for r in runs["data"]] == ["demo-run-1"]
    assert mn.json("run", "pause", "demo-run-1")["status"] == "paused"

    # A paused run is a paused job: it backs up, and restores as a new paused job.
    assert "Job backup successful." in mn("job", "backup", "demo-run-1", "-o", tmp_path / "b")
    [backup] = (tmp_path / "b").glob("*.mnbackup.zip")
    restored = mn("job", "restore", "daemon-hello", "-i", backup)
    assert "Status: paused" in restored and _field(restored, "Original job") == "demo-run-1"

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
