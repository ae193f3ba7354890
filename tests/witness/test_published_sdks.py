"""The published SDK clients, as they are, against mn-fake-core in the matching release profile.

Each SDK release is installed from PyPI into its own virtual environment outside the
repository (cached between runs) and driven by `sdk_driver.py` in that environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import CORE_TOKEN, FakeCoreProcess, cached_venv, free_port

pytestmark = pytest.mark.slow

DRIVER = Path(__file__).with_name("sdk_driver.py")
# Ours and not the core's: ReplayDeadLetter; and ClearJobsRequest.admin_token, the 1.2.5
# secret whose number 1.2.31 reserves (a 1.2.31 core ignores it).
OUR_EXTENSIONS = {
    "mirrorneuron.job.v1.ReplayDeadLetterRequest",
    "mirrorneuron.job.v1.ReplayDeadLetterResponse",
}


def sdk_python(version: str) -> Path:
    """A virtual environment with mirrorneuron-python-sdk==version, built once and cached."""
    package = f"mirrorneuron-python-sdk-{version}"
    return cached_venv(package, f"mirrorneuron-python-sdk=={version}") / "bin" / "python"


def drive(version: str | None, *args: str) -> Any:
    """Run the driver in the SDK's environment (or, with no version, in ours)."""
    python = sdk_python(version) if version else Path(sys.executable)
    done = subprocess.run(
        [str(python), str(DRIVER), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("MN_")}},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


def run_scenario(sdk: str, release: str) -> dict[str, Any]:
    core = FakeCoreProcess(
        free_port(), "--release", release, "--step-ms", "5", "--token", CORE_TOKEN
    ).start()
    try:
        return drive(sdk, "scenario", f"127.0.0.1:{core.port}", CORE_TOKEN)
    finally:
        core.stop()


def _common(out: dict[str, Any]) -> None:
    assert out["job_id"] in out["listed"]
    assert out["pause"] == "paused" and out["resume"] == "resumed"
    details = out["details"]
    assert details["job"]["status"] == "completed" and "topology" not in details["job"]
    assert all("type" not in a and "metadata" not in a for a in details["agents"])
    node = out["summary"]["nodes"][0]
    assert node["name"] in node["connected_nodes"] and node["self?"] is True
    assert out["cleared"] >= 1
    assert out["remove_node"] == "removed"
    assert out["bad_manifest"]["code"] == "INVALID_ARGUMENT"
    assert json.loads(out["bad_manifest"]["details"]) == ["nodes must be a non-empty list"] or (
        out["bad_manifest"]["details"].startswith('["manifest_version is required"')
    )


def test_the_1_1_sdk_against_the_1_1_profile() -> None:
    out = run_scenario("1.1.0", "1.1")
    _common(out)
    assert out["get_unknown"] == "{}"
    assert out["pause_pending"] == {"code": "INTERNAL", "details": "job is not running"}
    assert out["resume_running"] == {"code": "INTERNAL", "details": "job is not paused"}
    assert out["cancel"] == "cancelled"
    assert out["cancel_again"] == {
        "code": "INTERNAL",
        "details": "job is already in a terminal state",
    }
    assert out["cancel_unknown"]["code"] == "INTERNAL"
    assert "not found" in out["cancel_unknown"]["details"]
    # 1.1 sends the history and ends; its documents keep the newest events, newest first.
    assert out["streamed"][0] == "job_pending" and out["streamed"][-1] == "job_completed"
    assert out["details"]["recent_events"][0]["type"] == "job_completed"
    assert "metrics" not in out["summary"] and "cancel_all" not in out


def test_the_1_2_31_sdk_against_the_1_2_31_profile() -> None:
    out = run_scenario("1.2.31", "1.2.31")
    _common(out)
    assert out["get_unknown"] == '{"version":1}'
    assert out["pause_pending"] == {"code": "NOT_FOUND", "details": "job is not running"}
    assert out["resume_running"] == "ok"
    assert out["cancel"] in {"cancelled", "cancellation_pending"}
    assert out["cancel_again"] == "ok"
    assert out["cancel_unknown"]["code"] == "NOT_FOUND"
    # Following: heartbeats while the worker is busy, then the live events to the end.
    events = [t for t in out["streamed"] if t != "stream_heartbeat"]
    assert events[0] == "job_pending" and events[-1] == "job_completed"
    assert "stream_heartbeat" in out["streamed"]
    assert out["details"]["recent_events"] == [] and "result" not in out["details"]["job"]
    assert set(out["summary"]["metrics"]) == {"jobs", "nodes", "runtime"}
    assert out["cancel_all"]["cancelled_count"] == 1


def test_our_messages_match_the_1_2_31_sdks_field_for_field() -> None:
    theirs = drive("1.2.31", "descriptors", "mn_sdk.proto")
    ours = drive(None, "descriptors", "mn_api.adapters.grpc.protos")
    shared = [name for name in ours if name in theirs and not name.endswith("Service")]
    assert len(shared) >= 22, shared
    for name in shared:
        mine, real = ours[name], theirs[name]
        if name == "mirrorneuron.job.v1.ClearJobsRequest":
            # 1.2.31 reserves field 1, which 1.2.5 cores read as the admin secret.
            assert real["reservedRange"] == [{"start": 1, "end": 2}]
            mine = {**mine, "field": [f for f in mine["field"] if f["name"] != "admin_token"]}
            real = {k: v for k, v in real.items() if k != "reservedRange"}
        assert mine == real, name
    assert not (set(ours) - set(theirs) - OUR_EXTENSIONS - {"mirrorneuron.job.v1.JobService"})
    # Every RPC we call exists in the SDK's services with the same messages.
    for service in (
        "mirrorneuron.job.v1.JobService",
        "mirrorneuron.cluster.v1.ClusterService",
        "mirrorneuron.observability.v1.ObservabilityService",
    ):
        real_methods = {tuple(m) for m in theirs[service]}
        for method in ours[service]:
            if method[0] != "ReplayDeadLetter":
                assert tuple(method) in real_methods, (service, method)
