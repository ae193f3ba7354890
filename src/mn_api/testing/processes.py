"""mn-fake-core and mn-api as processes of the test's own, on free loopback ports.

Each is a context manager (or `start()` / `stop()`): it is ready when `start()` returns,
and stopping ends the process it started, by its id, politely first. Nothing is written
outside a temporary folder of the process's own, removed when it stops.
"""

from __future__ import annotations

import os
import re
import selectors
import socket
import subprocess
import sys
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import httpx

from mn_api.testing.control import CoreControl

# How long a process may take to say it is ready.
START_SECONDS = 30.0
# How long a process may take to stop when asked, before it is killed.
STOP_SECONDS = 15.0
_LISTENING = re.compile(r"listening on (\S+?):(\d+)")


class ProcessFailedError(RuntimeError):
    """A process did not become ready; the message ends with the last of its output."""


def free_port() -> int:
    """A TCP port nothing listens on at the moment, on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _tail(path: Path, size: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError:
        return ""


def terminate(process: subprocess.Popen[Any], within: float = STOP_SECONDS) -> int:
    """Stop `process` politely (SIGTERM), forcefully if it will not; its exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=within)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


class _Started(ABC):
    """Something the tests start and stop: ready once `start()` returns, a context manager
    that stops it on the way out."""

    @abstractmethod
    def start(self) -> Self: ...

    @abstractmethod
    def stop(self) -> object: ...

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()


class _Managed(_Started):
    """A child process with a temporary folder of its own."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None
        self._folder: tempfile.TemporaryDirectory[str] | None = None

    @property
    def folder(self) -> Path:
        if self._folder is None:
            self._folder = tempfile.TemporaryDirectory(prefix="mn-test-")
        return Path(self._folder.name)

    @property
    def output(self) -> Path:
        """Where the process's output goes."""
        return self.folder / "output.log"

    def _spawn(self, command: list[str], env: Mapping[str, str], stdout: int | IO[str]) -> None:
        with self.output.open("w") as errors:
            self.process = subprocess.Popen(
                command, env=dict(env), stdout=stdout, stderr=errors, text=True
            )

    def _fail(self, why: str) -> ProcessFailedError:
        output = _tail(self.output)
        self.stop()
        return ProcessFailedError(f"{why}\n{output}".rstrip())

    def stop(self) -> int | None:
        """End the process (when running) and remove its folder; its exit code."""
        code = None
        if self.process is not None:
            if self.process.stdout is not None:
                self.process.stdout.close()
            code, self.process = terminate(self.process), None
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None
        return code


def _clean_environment() -> dict[str, str]:
    """The environment without any MN_ setting, so that the caller's cannot leak in."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MN_")}


class FakeCoreProcess(_Managed):
    """`mn-fake-core` behaving like core `release` (1.1, 1.2.5, 1.2.31 or d26bef71),
    checking `token` (and 1.2.5's `admin_token`) where the release does; `nodes` > 1 makes
    a cluster. `target` is the first node's `host:port`, `control` its control surface."""

    def __init__(
        self,
        release: str = "1.2.31",
        *,
        token: str | None = None,
        admin_token: str | None = None,
        nodes: int = 1,
        step_ms: int | None = None,
        args: tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        self.release = release
        self.token = token
        self.admin_token = admin_token
        self.port = 0
        command = [sys.executable, "-m", "mn_api.entrypoints.fake_core", "--host", "127.0.0.1"]
        command += ["--port", "0", "--release", release, "--nodes", str(nodes)]
        command += ["--token", token] if token else []
        command += ["--admin-token", admin_token] if admin_token else []
        command += ["--step-ms", str(step_ms)] if step_ms is not None else []
        self.command = [*command, *args]

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def control(self) -> CoreControl:
        return CoreControl(self.target)

    def start(self) -> Self:
        self._spawn(self.command, _clean_environment(), subprocess.PIPE)
        assert self.process is not None and self.process.stdout is not None
        with selectors.DefaultSelector() as waiting:
            waiting.register(self.process.stdout, selectors.EVENT_READ)
            ready = waiting.select(timeout=START_SECONDS)
        line = self.process.stdout.readline() if ready else ""
        found = _LISTENING.search(line)
        if found is None:
            raise self._fail(f"mn-fake-core did not start: {line.strip() or 'no answer'}")
        self.port = int(found.group(2))
        return self


class GatewayProcess(_Managed):
    """`mn-api` on a free port: in front of `core` when given, else on its in-memory
    runtime behaving like core `release`. `env` adds settings (`MN_API_TOKENS`, ...);
    `url` is where it answers."""

    def __init__(
        self,
        core: FakeCoreProcess | None = None,
        *,
        release: str = "1.2.31",
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.core = core
        self.release = release
        self.env = dict(env or {})
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _environment(self) -> dict[str, str]:
        env = _clean_environment()
        env.update(
            {
                "MN_API_HOST": "127.0.0.1",
                "MN_API_PORT": str(self.port),
                "MN_API_LOG_PATH": str(self.folder / "api.log"),
                "MN_API_BUNDLE_DIR": str(self.folder / "bundles"),
            }
        )
        if self.core is None:
            env.update({"MN_RUNTIME": "memory", "MN_FAKE_CORE_RELEASE": self.release})
        else:
            env.update({"MN_RUNTIME": "grpc", "MN_GRPC_TARGET": self.core.target})
            if self.core.token:
                env["MN_GRPC_AUTH_TOKEN"] = self.core.token
            if self.core.admin_token:
                env["MN_GRPC_ADMIN_TOKEN"] = self.core.admin_token
        env.update(self.env)
        return env

    def start(self) -> Self:
        self.port = free_port()
        self._spawn([sys.executable, "-m", "mn_api"], self._environment(), subprocess.DEVNULL)
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise self._fail(f"mn-api ended with code {self.process.returncode}")
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise self._fail(f"mn-api did not answer within {START_SECONDS:g} s")


class InProcessGateway(_Started):
    """An ASGI app of the gateway (`mn_api.create_app(...)`) served by uvicorn in a thread
    of this process, on a free loopback port: real HTTP (streams included) without a
    process of its own. `url` is where it answers once entered."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_config=None, access_log=False
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._server.run, name="mn-gateway", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ProcessFailedError("the gateway did not start in this process")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=STOP_SECONDS)
            self._thread = None
