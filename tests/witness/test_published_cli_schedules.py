"""The published CLI 1.2.32 (with its SDK 1.2.31), as it is, against mn-fake-core in the
1.2.31 profile: every `mn schedule`, `mn trigger`, `mn event` and `mn deployment` command,
reading what the core answers as the CLI prints it.

The CLI is installed from PyPI into its own virtual environment outside the repository
(cached between runs) and run in an empty folder with a home of its own.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import CORE_TOKEN, FakeCoreProcess, cached_venv, free_port

pytestmark = pytest.mark.slow

Mn = Callable[..., tuple[int, str]]


def _bundle(folder: Path, **manifest: Any) -> str:
    (folder / "payloads").mkdir(parents=True)
    body = {
        "manifest_version": "1",
        "graph_id": "hello",
        "job_name": "hello-research",
        "nodes": [
            {"node_id": "router", "agent_type": "router"},
            {"node_id": "worker", "agent_type": "executor"},
        ],
        "edges": [{"from_node": "router", "to_node": "worker", "message_type": "task"}],
        "entrypoints": ["router"],
        **manifest,
    }
    (folder / "manifest.json").write_text(json.dumps(body))
    (folder / "payloads" / "input.txt").write_text("hello payload\n")
    return str(folder)


@pytest.fixture(scope="module")
def core() -> Iterator[FakeCoreProcess]:
    process = FakeCoreProcess(
        free_port(), "--release", "1.2.31", "--step-ms", "5", "--token", CORE_TOKEN
    ).start()
    yield process
    process.stop()


@pytest.fixture
def mn(core: FakeCoreProcess, tmp_path: Path) -> Mn:
    cli = cached_venv("mirrorneuron-cli-1.2.32", "mirrorneuron-cli==1.2.32") / "bin" / "mn"
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MN_")},
        "HOME": str(home),
        "MN_GRPC_TARGET": f"127.0.0.1:{core.port}",
        "MN_GRPC_AUTH_TOKEN": CORE_TOKEN,
        "MN_CLI_OUTPUT": "plain",
        "NO_COLOR": "1",
        "MN_DISABLE_UPDATE_CHECK": "1",
        "MN_SYNCTHING_ENABLED": "0",
        "MN_RUN_BACKGROUND_EVENT_RELAY": "0",
    }

    def run(*args: str) -> tuple[int, str]:
        done = subprocess.run(
            [str(cli), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
        )
        return done.returncode, done.stdout + done.stderr

    return run


def _field(output: str, name: str) -> str:
    found = re.search(rf"^{name}: (\S+)$", output, re.MULTILINE)
    assert found, output
    return found.group(1)


def _json(output: str) -> Any:
    return json.loads(output)


def test_schedules_triggers_and_events(mn: Mn, tmp_path: Path) -> None:
    bundle = _bundle(tmp_path / "bundle")
    code, out = mn(
        "schedule", "create", bundle, "--cron", "0 2 * * *", "--name", "nightly-report",
        "--timezone", "UTC", "--missed-policy", "catchup_one", "--window", "30m",
    )  # fmt: skip
    assert code == 0 and "Schedule create successful." in out, out
    assert _field(out, "Status") == "active"
    nightly = _field(out, "Schedule ID")
    code, out = mn("schedule", "status", nightly)
    record = _json(out)
    assert record["kind"] == "periodic" and record["crons"] == ["0 2 * * *"]
    assert record["missed_policy"] == "catchup_one" and record["next_run_at"].endswith("T02:00:00Z")
    assert record["window"] == {"duration_ms": 1_800_000, "end_action": "cancel"}
    assert record["source"] == {"cli": "schedule create"}

    # A one-time schedule a second ahead: the core's dispatcher starts its job by itself.
    code, out = mn("schedule", "delay", bundle, "--in", "1s", "--name", "soon")
    assert code == 0, out
    soon = _field(out, "Schedule ID")
    deadline = time.monotonic() + 30
    while (record := _json(mn("schedule", "status", soon)[1]))["status"] != "completed":
        assert time.monotonic() < deadline, record
        time.sleep(0.2)
    job_id = record["dispatches"][0]["job_id"]
    assert record["dispatches"][0]["reason"] == "delayed" and record["enabled"] is False
    code, out = mn("job", "status", job_id)
    assert code == 0 and job_id in out, out

    code, out = mn("schedule", "list", "--kind", "periodic")
    assert [r["schedule_id"] for r in _json(out)["data"]] == [nightly]
    code, out = mn("schedule", "pause", nightly, "--reason", "holiday")
    assert code == 0 and _field(out, "Status") == "paused", out
    code, out = mn("schedule", "run-now", nightly, "--payload-json", '{"source": "research"}')
    assert code == 0 and "Schedule run now successful." in out, out
    code, out = mn("schedule", "resume", nightly, "--reason", "back")
    assert _field(out, "Status") == "active"
    record = _json(mn("schedule", "status", nightly)[1])
    assert record["counters"]["dispatched"] == 1
    assert record["dispatches"][0]["metadata"]["payload"] == {"source": "research"}
    code, out = mn("schedule", "delete", nightly, "--reason", "retired")
    assert code == 0 and _field(out, "Status") == "deleted", out
    code, out = mn("schedule", "status", nightly)
    assert code == 2 and "MN_INVALID_ARGUMENT" in out, out

    code, out = mn(
        "trigger", "create", bundle, "--event", "invoice.received", "--name", "on-invoice",
        "--filter-json", '{"customer": "acme"}',
    )  # fmt: skip
    assert code == 0, out
    trigger = _field(out, "Schedule ID")
    assert [r["schedule_id"] for r in _json(mn("trigger", "list")[1])["data"]] == [trigger]
    code, out = mn(
        "event", "emit", "invoice.received", "--payload-json",
        '{"customer": "acme", "amount": 42}', "--source", "research",
    )  # fmt: skip
    assert code == 0 and "Event emit successful." in out, out
    events = _json(mn("event", "list", "--limit", "20")[1])["data"]
    assert events[0]["event_type"] == "invoice.received" and events[0]["source"] == "research"
    started = _json(mn("schedule", "status", trigger)[1])["dispatches"]
    assert [d["reason"] for d in started] == ["event"]
    code, out = mn("trigger", "delete", trigger, "--reason", "retired")
    assert code == 0 and _json(mn("trigger", "list")[1])["data"] == []


def test_deployments(mn: Mn, tmp_path: Path) -> None:
    batch = _bundle(tmp_path / "batch")
    code, out = mn(
        "deployment", "deploy", batch, "--key", "demo-service", "--strategy", "canary",
        "--canary", "1", "--max-parallel", "1", "--auto-promote",
    )  # fmt: skip
    assert code == 0 and "Deployment deploy successful." in out, out
    assert _field(out, "Status") == "successful" and _field(out, "Key") == "demo-service"
    listed = _json(mn("deployment", "list")[1])["data"]
    assert [d["deployment_key"] for d in listed] == ["demo-service"]
    status = _json(mn("deployment", "status", "demo-service")[1])
    assert status["current_version"] == "1" and status["versions"][0]["stable"] is True
    code, out = mn("deployment", "pause", "demo-service", "--reason", "change freeze")
    assert _field(out, "Status") == "paused"
    code, out = mn("deployment", "resume", "demo-service", "--reason", "freeze over")
    assert _field(out, "Status") == "running"
    # Nothing awaits promotion: the core refuses, as INVALID_ARGUMENT (exit 2).
    code, out = mn("deployment", "promote", "demo-service")
    assert code == 2 and "MN_INVALID_ARGUMENT" in out, out
    code, out = mn("deployment", "rollback", "demo-service", "--version", "1", "--reason", "bad")
    assert code == 0 and "Deployment rollback successful." in out, out
    status = _json(mn("deployment", "status", "demo-service")[1])
    assert status["status"] == "version_recorded" and status["current_version"] == "2"
    code, out = mn("deployment", "fail", "demo-service", "--reason", "smoke test failed")
    assert code == 0 and _field(out, "Status") == "failed", out

    # A service whose agent changes rolls out as a canary that waits to be promoted.
    service = _bundle(tmp_path / "service", daemon=True, job_name="svc")
    code, out = mn("deployment", "deploy", service, "--key", "svc")
    assert code == 0 and _field(out, "Status") == "successful", out
    changed = _bundle(
        tmp_path / "changed",
        daemon=True,
        job_name="svc",
        nodes=[
            {"node_id": "router", "agent_type": "router"},
            {"node_id": "worker", "agent_type": "executor", "config": {"model": "larger"}},
        ],
    )
    code, out = mn("deployment", "deploy", changed, "--key", "svc", "--strategy", "canary")
    assert code == 0 and _field(out, "Status") == "awaiting_promotion", out
    code, out = mn("deployment", "promote", "svc")
    assert code == 0 and _field(out, "Status") == "successful", out
    status = _json(mn("deployment", "status", "svc")[1])
    assert status["stable_version"] == "2" and status["canary_agent_ids"] == ["worker"]
