#!/usr/bin/python3
"""Run inside the image (deploy/container/probe.sh): starts the gateway as the image does,
on the in-memory runtime, and checks it as an operator's probes would. Exit 0: every check
passed; 1: one failed (named on stderr). Standard library only."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

STATE = Path("/var/lib/mn-api")
MANIFEST = {
    "manifest_version": "1",
    "graph_id": "probe",
    "nodes": [
        {"node_id": "router", "agent_type": "router"},
        {"node_id": "worker", "agent_type": "executor", "type": "map"},
        {"node_id": "collect", "agent_type": "aggregator"},
    ],
    "edges": [
        {"from_node": "router", "to_node": "worker", "message_type": "task"},
        {"from_node": "worker", "to_node": "collect", "message_type": "result"},
    ],
    "entrypoints": ["router"],
}


class ProbeFailed(Exception):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def call(base: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{base}{path}", data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as refused:
        return refused.code, json.load(refused)


def check(condition: bool, what: str) -> None:
    if not condition:
        raise ProbeFailed(what)
    print(f"ok: {what}")


def probe(base: str, env: dict[str, str]) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            status, body = call(base, "GET", "/api/v1/health")
            break
        except OSError:
            if time.monotonic() > deadline:
                raise ProbeFailed("the gateway answered /api/v1/health within 60 s") from None
            time.sleep(0.2)
    check(status == 200 and body["status"] == "ok", "GET /api/v1/health answers 200 ok")
    status, body = call(base, "GET", "/api/v1/ready")
    check(status == 200 and body["status"] == "ready", "GET /api/v1/ready answers 200 ready")
    healthcheck = subprocess.run(["/opt/mn-api/bin/mn-api-healthcheck"], env=env, check=False)
    check(healthcheck.returncode == 0, "the image's health check passes")
    status, body = call(base, "POST", "/api/v1/jobs", {"manifest": MANIFEST})
    check(status == 201, "a job submission answers 201")
    job_id = body["job_id"]
    deadline = time.monotonic() + 30
    while True:
        status, body = call(base, "GET", f"/api/v1/jobs/{job_id}")
        if status == 200 and body["job"]["status"] == "completed":
            break
        if time.monotonic() > deadline:
            raise ProbeFailed("the job completed within 30 s")
        time.sleep(0.1)
    check(True, "the job completed")
    status, body = call(base, "POST", "/api/v1/jobs", {"manifest": {"nodes": 1}})
    check(status == 422 and body["error"] == "manifest_invalid", "a bad manifest answers 422")


def main() -> int:
    port = free_port()
    # The image's own settings (0.0.0.0, the state folder), a port free on the host (chroot
    # isolation shares its network) and the in-memory runtime.
    env = {**os.environ, "MN_API_PORT": str(port), "MN_RUNTIME": "memory", "MN_FAKE_STEP_MS": "5"}
    check(os.getuid() != 0, f"the gateway runs as an unprivileged user (uid {os.getuid()})")
    # In a session of its own, so that a failed probe ends the gateway and its workers too.
    gateway = subprocess.Popen(
        ["/usr/bin/tini", "-s", "--", "/opt/mn-api/bin/mn-api"], env=env, start_new_session=True
    )
    try:
        probe(f"http://127.0.0.1:{port}", env)
    except (ProbeFailed, OSError, KeyError, ValueError) as failed:
        print(f"FAILED: {failed}", file=sys.stderr)
        os.killpg(gateway.pid, signal.SIGKILL)
        gateway.wait()
        return 1
    gateway.send_signal(signal.SIGTERM)
    try:
        code = gateway.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(gateway.pid, signal.SIGKILL)
        print("FAILED: the gateway stopped within 30 s of SIGTERM", file=sys.stderr)
        return 1
    try:
        check(code == 0, f"SIGTERM stops the gateway cleanly (exit {code})")
        log = STATE / "logs" / "api.log"
        check(log.is_file() and log.stat().st_size > 0, "the log is written under the volume")
    except ProbeFailed as failed:
        print(f"FAILED: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
