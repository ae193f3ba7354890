"""The published CLI 1.2.32 (with its SDK 1.2.31), as it is, against mn-fake-core in the
1.2.31 profile: every `mn schedule`, `mn trigger`, `mn event` and `mn deployment` command,
reading what the core answers as the CLI prints it (the CLI is run as
tests/support/published_cli.py says)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import CORE_TOKEN, FakeCoreProcess, free_port
from tests.support.published_cli import PublishedCli, bundle, field, printed_json

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def core() -> Iterator[FakeCoreProcess]:
    process = FakeCoreProcess(
        free_port(), "--release", "1.2.31", "--step-ms", "5", "--token", CORE_TOKEN
    ).start()
    yield process
    process.stop()


@pytest.fixture
def mn(core: FakeCoreProcess, tmp_path: Path) -> Iterator[PublishedCli]:
    cli = PublishedCli(tmp_path / "cli", f"127.0.0.1:{core.port}")
    yield cli
    cli.close()


def test_schedules_triggers_and_events(mn: PublishedCli, tmp_path: Path) -> None:
    hello = bundle(tmp_path / "bundle")
    code, out = mn(
        "schedule", "create", hello, "--cron", "0 2 * * *", "--name", "nightly-report",
        "--timezone", "UTC", "--missed-policy", "catchup_one", "--window", "30m",
    )  # fmt: skip
    assert code == 0 and "Schedule create successful." in out, out
    assert field(out, "Status") == "active"
    nightly = field(out, "Schedule ID")
    code, out = mn("schedule", "status", nightly)
    record = printed_json(out)
    assert record["kind"] == "periodic" and record["crons"] == ["0 2 * * *"]
    assert record["missed_policy"] == "catchup_one" and record["next_run_at"].endswith("T02:00:00Z")
    assert record["window"] == {"duration_ms": 1_800_000, "end_action": "cancel"}
    assert record["source"] == {"cli": "schedule create"}

    # A one-time schedule a second ahead: the core's dispatcher starts its job by itself.
    code, out = mn("schedule", "delay", hello, "--in", "1s", "--name", "soon")
    assert code == 0, out
    soon = field(out, "Schedule ID")
    deadline = time.monotonic() + 30
    while (record := mn.json("schedule", "status", soon))["status"] != "completed":
        assert time.monotonic() < deadline, record
        time.sleep(0.2)
    job_id = record["dispatches"][0]["job_id"]
    assert record["dispatches"][0]["reason"] == "delayed" and record["enabled"] is False
    code, out = mn("job", "status", job_id)
    assert code == 0 and job_id in out, out

    code, out = mn("schedule", "list", "--kind", "periodic")
    assert [r["schedule_id"] for r in printed_json(out)["data"]] == [nightly]
    code, out = mn("schedule", "pause", nightly, "--reason", "holiday")
    assert code == 0 and field(out, "Status") == "paused", out
    code, out = mn("schedule", "run-now", nightly, "--payload-json", '{"source": "research"}')
    assert code == 0 and "Schedule run now successful." in out, out
    code, out = mn("schedule", "resume", nightly, "--reason", "back")
    assert field(out, "Status") == "active"
    record = mn.json("schedule", "status", nightly)
    assert record["counters"]["dispatched"] == 1
    assert record["dispatches"][0]["metadata"]["payload"] == {"source": "research"}
    code, out = mn("schedule", "delete", nightly, "--reason", "retired")
    assert code == 0 and field(out, "Status") == "deleted", out
    code, out = mn("schedule", "status", nightly)
    assert code == 2 and "MN_INVALID_ARGUMENT" in out, out

    code, out = mn(
        "trigger", "create", hello, "--event", "invoice.received", "--name", "on-invoice",
        "--filter-json", '{"customer": "acme"}',
    )  # fmt: skip
    assert code == 0, out
    trigger = field(out, "Schedule ID")
    assert [r["schedule_id"] for r in mn.json("trigger", "list")["data"]] == [trigger]
    code, out = mn(
        "event", "emit", "invoice.received", "--payload-json",
        '{"customer": "acme", "amount": 42}', "--source", "research",
    )  # fmt: skip
    assert code == 0 and "Event emit successful." in out, out
    events = mn.json("event", "list", "--limit", "20")["data"]
    assert events[0]["event_type"] == "invoice.received" and events[0]["source"] == "research"
    started = mn.json("schedule", "status", trigger)["dispatches"]
    assert [d["reason"] for d in started] == ["event"]
    code, out = mn("trigger", "delete", trigger, "--reason", "retired")
    assert code == 0 and mn.json("trigger", "list")["data"] == []


def test_deployments(mn: PublishedCli, tmp_path: Path) -> None:
    batch = bundle(tmp_path / "batch")
    code, out = mn(
        "deployment", "deploy", batch, "--key", "demo-service", "--strategy", "canary",
        "--canary", "1", "--max-parallel", "1", "--auto-promote",
    )  # fmt: skip
    assert code == 0 and "Deployment deploy successful." in out, out
    assert field(out, "Status") == "successful" and field(out, "Key") == "demo-service"
    listed = mn.json("deployment", "list")["data"]
    assert [d["deployment_key"] for d in listed] == ["demo-service"]
    status = mn.json("deployment", "status", "demo-service")
    assert status["current_version"] == "1" and status["versions"][0]["stable"] is True
    code, out = mn("deployment", "pause", "demo-service", "--reason", "change freeze")
    assert field(out, "Status") == "paused"
    code, out = mn("deployment", "resume", "demo-service", "--reason", "freeze over")
    assert field(out, "Status") == "running"
    # Nothing awaits promotion: the core refuses, as INVALID_ARGUMENT (exit 2).
    code, out = mn("deployment", "promote", "demo-service")
    assert code == 2 and "MN_INVALID_ARGUMENT" in out, out
    code, out = mn("deployment", "rollback", "demo-service", "--version", "1", "--reason", "bad")
    assert code == 0 and "Deployment rollback successful." in out, out
    status = mn.json("deployment", "status", "demo-service")
    assert status["status"] == "version_recorded" and status["current_version"] == "2"
    code, out = mn("deployment", "fail", "demo-service", "--reason", "smoke test failed")
    assert code == 0 and field(out, "Status") == "failed", out

    # A service whose agent changes rolls out as a canary that waits to be promoted.
    service = bundle(tmp_path / "service", daemon=True, job_name="svc")
    code, out = mn("deployment", "deploy", service, "--key", "svc")
    assert code == 0 and field(out, "Status") == "successful", out
    changed = bundle(
        tmp_path / "changed",
        daemon=True,
        job_name="svc",
        nodes=[
            {"node_id": "router", "agent_type": "router"},
            {"node_id": "worker", "agent_type": "executor", "config": {"model": "larger"}},
        ],
    )
    code, out = mn("deployment", "deploy", changed, "--key", "svc", "--strategy", "canary")
    assert code == 0 and field(out, "Status") == "awaiting_promotion", out
    code, out = mn("deployment", "promote", "svc")
    assert code == 0 and field(out, "Status") == "successful", out
    status = mn.json("deployment", "status", "svc")
    assert status["stable_version"] == "2" and status["canary_agent_ids"] == ["worker"]
