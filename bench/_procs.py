"""Shared by the benchmarks: starting servers, free ports, and watching a process's memory."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise TimeoutError(url)


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class PeakRss:
    """Samples a process's resident memory every few milliseconds while in use."""

    def __init__(self, pid: int, every: float = 0.005) -> None:
        self.pid = pid
        self.every = every
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes(self.pid))
            time.sleep(self.every)

    def __enter__(self) -> PeakRss:
        self.peak = rss_bytes(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes(self.pid))


def start(
    command: list[str], env: dict[str, str] | None = None, ready_line: str | None = None
) -> subprocess.Popen:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MN_")}
    full_env.update(env or {})
    # Output nobody reads would fill the pipe and stall the server: only the line that
    # says it is ready is read, everything else goes nowhere.
    process = subprocess.Popen(
        command,
        env=full_env,
        text=True,
        stderr=subprocess.DEVNULL,
        stdout=subprocess.PIPE if ready_line is not None else subprocess.DEVNULL,
    )
    if ready_line is not None:
        line = process.stdout.readline() if process.stdout else ""
        if ready_line not in line:
            process.kill()
            raise RuntimeError(f"{command[0]} did not start: {line}")
    return process


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
