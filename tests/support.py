"""Helpers shared by the test suites: manifests, a controllable clock, zip builders."""

from __future__ import annotations

import io
import stat
import zipfile
from typing import Any

EPOCH = 1_764_000_000.0


class FakeClock:
    """Moves one millisecond per reading, so timestamps differ and order is stable."""

    def __init__(self, start: float = EPOCH) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 0.001
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def pipeline_manifest(**node_config: dict[str, Any]) -> dict[str, Any]:
    """router -> executor -> aggregator; `node_config` adds a config to nodes by id."""
    nodes = [
        {"node_id": "router", "agent_type": "router"},
        {"node_id": "worker", "agent_type": "executor", "type": "llm"},
        {"node_id": "collect", "agent_type": "aggregator"},
    ]
    for node in nodes:
        if node["node_id"] in node_config:
            node["config"] = node_config[node["node_id"]]
    return {
        "manifest_version": "1",
        "graph_id": "pipeline",
        "job_name": "three steps",
        "nodes": nodes,
        "edges": [
            {"from_node": "router", "to_node": "worker", "message_type": "task"},
            {"from_node": "worker", "to_node": "collect", "message_type": "result"},
        ],
        "entrypoints": ["router"],
    }


def make_zip(members: dict[str, bytes | str], *, symlinks: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buffer.getvalue()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, within: float = 20.0) -> None:
    """Poll `url` until it answers at all; raises TimeoutError otherwise."""
    import time

    import httpx

    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise TimeoutError(url)


class FakeCoreProcess:
    """mn-fake-core as a separate process, to stop, restart and freeze in tests."""

    def __init__(self, port: int, *args: str) -> None:
        import sys
        from pathlib import Path

        self.port = port
        self.command = [
            str(Path(sys.executable).with_name("mn-fake-core")),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *args,
        ]
        self.process = None

    def start(self) -> FakeCoreProcess:
        import subprocess

        self.process = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        line = self.process.stdout.readline()
        if "listening" not in line:
            self.stop()
            raise RuntimeError(f"mn-fake-core did not start: {line}")
        return self

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stop(self) -> int | None:
        import subprocess

        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        code, self.process = self.process.returncode, None
        return code
