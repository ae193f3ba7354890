"""The published SDK 1.2.31, as it is, through operations and node administration against
a two-node mn-fake-core of release 1.2.31."""

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

DRIVER = Path(__file__).with_name("sdk_operations_driver.py")
JOIN_TOKEN = "join-secret"
MN1, MN2 = "mn1@127.0.0.1", "mn2@127.0.0.1"


@pytest.fixture(scope="module")
def out() -> dict[str, Any]:
    first, second = free_port(), free_port()
    core = FakeCoreProcess(
        first,
        "--release",
        "1.2.31",
        "--ports",
        f"{first},{second}",
        "--step-ms",
        "5",
        "--token",
        CORE_TOKEN,
        "--join-token",
        JOIN_TOKEN,
    ).start()
    try:
        done = subprocess.run(
            [
                str(sdk_python("1.2.31")),
                str(DRIVER),
                f"127.0.0.1:{first}",
                f"127.0.0.1:{second}",
                CORE_TOKEN,
                JOIN_TOKEN,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={k: v for k, v in os.environ.items() if not k.startswith("MN_")},
        )
    finally:
        core.stop()
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_an_operation_is_started_followed_resumed_and_read(out: dict[str, Any]) -> None:
    started = out["started"]
    assert started["kind"] == "reconcile_node" and started["status"] == "pending"
    assert started["node_name"] == MN2 and "items" not in started
    followed = [e for e in out["followed"] if e["type"] != "stream_heartbeat"]
    count = started["target_count"]
    assert [e["sequence"] for e in followed] == list(range(1, 4 + 2 * count))
    assert followed[0]["type"] == "operation_created" and followed[-1]["status"] == "completed"
    assert [e["sequence"] for e in out["resumed"]] == list(range(3, 4 + 2 * count))
    operation = out["operation"]
    assert operation["status"] == "completed" and len(operation["items"]) == count
    assert operation["counters"]["finished"] == count
    assert out["unknown_operation"] == {
        "code": "NOT_FOUND",
        "details": '"operation op-missing was not found"',
    }
    assert out["bad_kind"] == {
        "code": "INVALID_ARGUMENT",
        "details": 'unsupported operation kind "defrag"',
    }


def test_node_administration(out: dict[str, Any]) -> None:
    assert out["maintenance"]["status"] == "maintenance"
    assert out["drain_status"]["maintenance"]["reason"] == "kernel"
    assert out["undrain"]["node_state"]["status"] == "healthy"
    drain = out["drain"]
    assert drain["node"] == MN2 and drain["status"] == "complete"
    assert drain["operation_id"].startswith("op-")
    assert {a["status"] for a in drain["actions"]} <= {"migrated"}
    nodes = {n["name"]: (n["status"], n["scheduling_eligible"]) for n in out["summary_nodes"]}
    assert nodes == {MN1: ("healthy", True), MN2: ("maintenance", False)}
    assert out["reconcile"]["checked"] >= 1 and out["reconcile"]["recovered"] >= 1


def test_a_node_joins_with_the_join_token(out: dict[str, Any]) -> None:
    assert out["handshake_refused"] == {
        "code": "UNAUTHENTICATED",
        "details": "valid MN_NETWORK_JOIN_TOKEN is required",
    }
    handshake = out["handshake"]
    assert handshake["node_name"] == MN2 and handshake["runtime_mode"] == "full"
    assert handshake["redis_url"].startswith("redis://:")
    assert handshake["node_info"]["coordination_store"]["healthy"] is True
    assert out["add_node"] == "connected"
    assert out["add_unknown"] == {
        "code": "INTERNAL",
        "details": "failed to connect to ghost@10.9.9.9",
    }
    assert out["joining"]["status"] == "joining"


def test_cancel_all_and_clear_run_on_operations(out: dict[str, Any]) -> None:
    cancelled = out["cancel_all"]
    assert cancelled["operation_id"].startswith("op-")
    assert cancelled["cancelled_count"] == 2 and cancelled["failed_count"] == 0
    assert sorted(r["job_id"] for r in cancelled["results"]) == sorted(out["jobs"])
    assert out["cleared"] == 2
