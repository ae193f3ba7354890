"""A request's id, followed from the client's answer through the gateway's log to the core."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import orjson
import pytest

from tests.support import FakeCoreProcess, GatewayProcess, free_port

pytestmark = pytest.mark.slow


def test_a_request_id_is_in_the_answer_the_log_and_the_core_failure(tmp_path: Path) -> None:
    core = FakeCoreProcess(free_port(), "--token", "core-secret").start()
    gateway = GatewayProcess(
        tmp_path, "grpc", core=core, MN_GRPC_AUTH_TOKEN="stale-token", MN_LOG_FORMAT="json"
    )
    gateway.start()
    try:
        answer = httpx.post(
            f"{gateway.base}/api/v1/jobs/ghost-1-000000000000/pause",
            headers={"X-Request-ID": "trace-e2e-1"},
        )
    finally:
        gateway.stop()
        core.stop()
    assert answer.status_code == 502
    assert answer.headers["x-request-id"] == "trace-e2e-1"
    assert answer.json()["request_id"] == "trace-e2e-1"

    deadline = time.monotonic() + 5
    while True:
        lines = [orjson.loads(line) for line in (tmp_path / "api.log").read_text().splitlines()]
        mine = [line for line in lines if line["request_id"] == "trace-e2e-1"]
        if len(mine) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    messages = [line["message"] for line in mine]
    assert any(m.startswith("runtime_auth_failed: the core refused") for m in messages)
    assert any(m.startswith("POST /api/v1/jobs/{job_id}/pause 502") for m in messages)
    assert "stale-token" not in (tmp_path / "api.log").read_text()
