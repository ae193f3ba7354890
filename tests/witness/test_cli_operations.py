"""The published CLI 1.2.32, as it is: its `operation`, `node` and `job cancel-all` /
`job clear` commands against a two-node mn-fake-core of release 1.2.31 (the CLI is run as
tests/support/published_cli.py says)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.support import CORE_TOKEN, FakeCoreProcess, free_port
from tests.support.published_cli import HELLO, PublishedCli

pytestmark = pytest.mark.slow

JOIN_TOKEN = "join-secret"
MN1, MN2 = "mn1@127.0.0.1", "mn2@127.0.0.1"
SERVICE = {
    **HELLO,
    "graph_id": "svc",
    "daemon": True,
    "policies": {"job_type": "service", "recovery_mode": "cluster_recover"},
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str]]:
    """Every command of the sequence and what it answered (exit code, output)."""
    work = tmp_path_factory.mktemp("cli-operations")
    manifest = work / "service.json"
    manifest.write_text(json.dumps(SERVICE))
    first, second = free_port(), free_port()
    mn = PublishedCli(work, f"127.0.0.1:{first}")
    core = FakeCoreProcess(
        first,
        *("--release", "1.2.31", "--ports", f"{first},{second}", "--step-ms", "5"),
        *("--token", CORE_TOKEN, "--join-token", JOIN_TOKEN),
    ).start()
    out: dict[str, tuple[int, str]] = {}
    try:
        jobs = []
        for index in range(2):
            out[f"submit {index}"] = mn("job", "submit", str(manifest))
            jobs.append(re.search(r"Job ID: (\S+)", out[f"submit {index}"][1])[1])
        out["jobs"] = (0, " ".join(jobs))
        port = str(second)
        out["node add"] = mn("node", "add", "127.0.0.1", "--token", JOIN_TOKEN, "--grpc-port", port)
        out["node join"] = mn(
            *("node", "join", "127.0.0.1", "--token", JOIN_TOKEN, "--grpc-port", port),
            *("--local-host", "127.0.0.1"),
        )
        out["node add refused"] = mn(
            "node", "add", "127.0.0.1", "--token", "guess", "--grpc-port", port
        )
        out["node maintenance"] = mn("node", "maintenance", MN2, "--enable", "--reason", "kernel")
        out["node drain"] = mn("node", "drain", MN2, "--reason", "rack", "--deadline", "30s")
        operation = re.search(r"operation (op-\S+?)\)", out["node drain"][1])
        out["drain operation"] = (0, operation[1] if operation else "")
        out["node list"] = mn("node", "list")
        out["node undrain"] = mn("node", "undrain", MN2, "--reason", "done", "--mark-eligible")
        out["node reconcile"] = mn("node", "reconcile", MN1, "--reason", "lost", "--dry-run")
        out["operation status"] = mn("operation", "status", out["drain operation"][1])
        out["operation watch"] = mn("operation", "watch", out["drain operation"][1])
        out["operation missing"] = mn("operation", "status", "op-missing")
        out["job cancel-all"] = mn("job", "cancel-all", "-y")
        out["job cancel-all again"] = mn("job", "cancel-all", "-y")
        out["job clear"] = mn("job", "clear", "-y")
        out["job list"] = mn("job", "list")
    finally:
        mn.close()
        core.stop()
    return out


def test_node_add_and_join_handshake_with_the_second_node(runs: dict[str, Any]) -> None:
    for command in ("node add", "node join"):
        code, said = runs[command]
        assert code == 0, said
        assert "successful." in said and f"Node: {MN2}" in said and "Status: connected" in said
    code, said = runs["node add refused"]
    assert code == 1 and "Could not join MirrorNeuron node" in said
    assert "UNAUTHENTICATED" in said and "valid MN_NETWORK_JOIN_TOKEN is required" in said


def test_maintenance_drain_undrain_and_reconcile(runs: dict[str, Any]) -> None:
    code, said = runs["node maintenance"]
    assert code == 0 and "Node maintenance successful." in said, said
    code, said = runs["node drain"]
    assert code == 0 and "Node drain successful." in said, said
    for job_id in runs["jobs"][1].split():
        assert f"✓ {job_id}: migrated" in said
    listed = json.loads(runs["node list"][1][runs["node list"][1].index("{") :])
    mn2 = next(node for node in listed["nodes"] if node["name"] == MN2)
    assert mn2["status"] == "maintenance" and mn2["scheduling_eligible"] is False
    code, said = runs["node undrain"]
    assert code == 0 and "Node undrain successful." in said and "Scheduling eligible: True" in said
    code, said = runs["node reconcile"]
    assert code == 0 and "Node reconcile successful." in said, said
    assert said.count(": recovered") == 2


def test_operation_status_and_watch(runs: dict[str, Any]) -> None:
    operation = runs["drain operation"][1]
    code, said = runs["operation status"]
    document = json.loads(said[said.index("{") :])
    assert code == 0 and document["operation_id"] == operation
    assert document["kind"] == "drain_node" and document["status"] == "completed"
    code, said = runs["operation watch"]
    assert code == 0 and "Operation successful." in said and f"Operation ID: {operation}" in said
    code, said = runs["operation missing"]
    assert code == 2 and "operation op-missing was not found" in said


def test_cancel_all_and_clear(runs: dict[str, Any]) -> None:
    jobs = runs["jobs"][1].split()
    code, said = runs["job cancel-all"]
    assert code == 0 and "Job cancel-all successful." in said, said
    assert all(f"✓ {job_id}: cancelled" in said for job_id in jobs)
    code, said = runs["job cancel-all again"]
    assert code == 0 and "Status: no active jobs" in said
    # Each job is cleared by the core. The CLI then exits 1 on its own: it also runs its
    # local clean-up for the operation_completed event (status `completed`, no item id),
    # as it would against a real core.
    code, said = runs["job clear"]
    assert all(f"✓ {job_id}: cleared" in said for job_id in jobs), said
    assert code == 1 and "invalid job ID: ''" in said
    code, said = runs["job list"]
    assert code == 0 and not any(job_id in said for job_id in jobs)
