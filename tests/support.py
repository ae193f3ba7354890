"""Helpers shared by the test suites: manifests, a controllable clock, zip builders."""

from __future__ import annotations

import fcntl
import io
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

# The benchmark's process helpers serve the tests as they are.
from bench._procs import free_port, wait_http

EPOCH = 1_764_000_000.0
# Virtual environments of published packages, kept outside the repository between runs.
TEST_CACHE = Path(os.environ.get("MN_TEST_CACHE", Path.home() / ".cache" / "mn-api-tests"))


def cached_venv(name: str, *requirements: str) -> Path:
    """A virtual environment with the requirements installed, built on first use (once,
    under a lock, whatever runs in parallel) and kept in the cache; its folder. Unable to
    install, the test fails in CI and is skipped elsewhere."""
    import pytest

    home = TEST_CACHE / name
    ready = home / ".ready"
    TEST_CACHE.mkdir(parents=True, exist_ok=True)
    with (TEST_CACHE / f".{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not ready.exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(home)], check=True)
            install = subprocess.run(
                [str(home / "bin" / "python"), "-m", "pip", "install", "--quiet", *requirements],
                capture_output=True,
                text=True,
            )
            if install.returncode != 0:
                message = f"cannot install {' '.join(requirements)}: {install.stderr[-500:]}"
                if os.environ.get("CI"):
                    pytest.fail(message)
                pytest.skip(message)
            ready.touch()
    return home


class FakeClock:
    """Moves one millisecond per reading, so timestamps differ and order is stable."""

    def __init__(self, start: float = EPOCH) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 0.001
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# The credentials fake cores are started with in tests (checked from release 1.2.5 on).
CORE_TOKEN = "core-token"
CORE_ADMIN_TOKEN = "core-admin-secret"
CORE_CREDENTIALS = ("--token", CORE_TOKEN, "--admin-token", CORE_ADMIN_TOKEN)
GATEWAY_CORE_ENV = {"MN_GRPC_AUTH_TOKEN": CORE_TOKEN, "MN_GRPC_ADMIN_TOKEN": CORE_ADMIN_TOKEN}


def pipeline_manifest(**node_config: dict[str, Any]) -> dict[str, Any]:
    """router -> executor -> aggregator; `node_config` adds a config to nodes by id."""
    nodes = [
        {"node_id": "router", "agent_type": "router"},
        {"node_id": "worker", "agent_type": "executor", "type": "map"},
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
        if self.process is None:
            return None
        code, self.process = terminate(self.process), None
        return code


class GatewayProcess:
    """mn-api as a separate process, on the memory runtime or in front of a fake core."""

    def __init__(
        self,
        tmp_path,
        runtime: str = "memory",
        *,
        core: FakeCoreProcess | None = None,
        args: tuple[str, ...] = (),
        **env: str,
    ) -> None:
        self.tmp_path = tmp_path
        self.runtime = runtime
        self.extra_env = env
        self.args = args
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.shared_core = core
        self.core: FakeCoreProcess | None = None
        self.process = None

    def start(self) -> GatewayProcess:
        import os
        import subprocess
        import sys
        from pathlib import Path

        env = {k: v for k, v in os.environ.items() if not k.startswith("MN_")}
        env.update(
            {
                "MN_API_LOG_PATH": str(self.tmp_path / "api.log"),
                "MN_API_BUNDLE_DIR": str(self.tmp_path / "bundles"),
                "MN_API_HOST": "127.0.0.1",
                "MN_API_PORT": str(self.port),
            }
        )
        step = self.extra_env.get("MN_FAKE_STEP_MS", "5")
        if self.runtime == "memory":
            env["MN_RUNTIME"] = "memory"
        elif self.shared_core is not None:
            env.update(
                {"MN_RUNTIME": "grpc", "MN_GRPC_TARGET": f"127.0.0.1:{self.shared_core.port}"}
            )
            env.update(GATEWAY_CORE_ENV)
        else:
            legacy = ("--legacy",) if self.runtime == "grpc_legacy" else ()
            self.core = FakeCoreProcess(
                free_port(), "--step-ms", step, *legacy, *CORE_CREDENTIALS
            ).start()
            env.update({"MN_RUNTIME": "grpc", "MN_GRPC_TARGET": f"127.0.0.1:{self.core.port}"})
            env.update(GATEWAY_CORE_ENV)
        env.update(self.extra_env)
        mn_api = str(Path(sys.executable).with_name("mn-api"))
        self.process = subprocess.Popen(
            [mn_api], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_http(f"{self.base}/api/v1/health")
        except TimeoutError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.process is not None:
            terminate(self.process)
            self.process = None
        if self.core is not None:
            self.core.stop()
            self.core = None


async def read_sse(lines, stop=None, on_event=None) -> list[dict]:
    """Parse Server-Sent Events from an async iterator of lines until it ends (or `stop`);
    `on_event` (a coroutine function) is awaited with each event as it comes."""
    events: list[dict] = []
    current: dict = {}
    async for line in lines:
        if line == "":
            if current:
                events.append(current)
                if on_event is not None:
                    await on_event(current, events)
                if stop is not None and stop(current, events):
                    return events
            current = {}
        elif line.startswith(":"):
            current.setdefault("comments", []).append(line[1:].strip())
        else:
            name, _, value = line.partition(":")
            current[name] = value[1:] if value.startswith(" ") else value
    if current:
        events.append(current)
    return events


class RedisServer:
    """A private redis-server on a free loopback port, persistence off; `options` are
    further redis-server arguments, `sentinel` makes it a sentinel."""

    def __init__(self, *options: str, port: int | None = None, workdir: Path | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.options = options
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    def start(self, config: str | None = None) -> RedisServer:
        """`config`: the text of a config file it needs (sentinels rewrite theirs)."""
        command = ["redis-server"]
        if config is not None:
            assert self.workdir is not None
            path = self.workdir / f"redis-{self.port}.conf"
            path.write_text(config)
            command += [str(path), "--sentinel"]
        command += [
            "--port", str(self.port), "--bind", "127.0.0.1", "--daemonize", "no",
            "--loglevel", "warning",
        ]  # fmt: skip
        if config is None:
            command += ["--save", "", "--appendonly", "no"]
        if self.workdir is not None:
            command += ["--dir", str(self.workdir)]
        self.process = subprocess.Popen(
            [*command, *self.options], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.command("PING").startswith(b"+PONG"):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not start")

    def command(self, *words: str, timeout: float = 1.0) -> bytes:
        """One command in the inline protocol; b"" when the server cannot be reached."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
                sock.sendall(" ".join(words).encode() + b"\r\n")
                return sock.recv(65536)
        except OSError:
            return b""

    def kill(self) -> None:
        """Gone at once, as a crashed host would be."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


def _wait_until(check: Any, failure: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(failure)
        time.sleep(0.1)


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free as well."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


class RedisClusterServers:
    """Three primaries on loopback ports, joined by `redis-cli --cluster create`."""

    def __init__(self, workdir: Path) -> None:
        self.servers = [
            RedisServer(
                "--cluster-enabled", "yes",
                "--cluster-config-file", f"nodes-{port}.conf",
                "--cluster-node-timeout", "2000",
                port=port,
                workdir=workdir,
            )
            for port in (_cluster_port() for _ in range(3))
        ]  # fmt: skip
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.servers)
        self.url = f"redis+cluster://{hosts}"

    def start(self) -> RedisClusterServers:
        try:
            for server in self.servers:
                server.start()
            subprocess.run(
                [
                    "redis-cli", "--cluster", "create",
                    *(f"127.0.0.1:{s.port}" for s in self.servers),
                    "--cluster-replicas", "0", "--cluster-yes",
                ],
                check=True, capture_output=True, timeout=30,
            )  # fmt: skip
            _wait_until(
                lambda: all(b"cluster_state:ok" in s.command("CLUSTER", "INFO") for s in self),
                "the Redis cluster did not come up",
            )
        except BaseException:
            self.stop()
            raise
        return self

    def __iter__(self) -> Iterator[RedisServer]:
        return iter(self.servers)

    def flush(self) -> None:
        for server in self.servers:
            server.command("FLUSHALL")

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


class RedisSentinelGroup:
    """One primary, one replica and three sentinels watching them, on loopback ports."""

    master = "mn-primary"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.primary = RedisServer(workdir=workdir)
        self.replica = RedisServer(
            "--replicaof", "127.0.0.1", str(self.primary.port), workdir=workdir
        )
        self.sentinel_servers = [RedisServer(workdir=workdir) for _ in range(3)]
        self.sentinels = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinel_servers)

    def start(self) -> RedisSentinelGroup:
        config = (
            f"sentinel monitor {self.master} 127.0.0.1 {self.primary.port} 2\n"
            f"sentinel down-after-milliseconds {self.master} 1000\n"
            f"sentinel failover-timeout {self.master} 4000\n"
            f"sentinel parallel-syncs {self.master} 1\n"
        )
        try:
            self.primary.start()
            self.replica.start()
            for sentinel in self.sentinel_servers:
                sentinel.start(config)
            _wait_until(self._settled, "the sentinels did not find the replica")
        except BaseException:
            self.stop()
            raise
        return self

    def _settled(self) -> bool:
        linked = b"master_link_status:up" in self.replica.command("INFO", "replication")
        seen = all(
            b"slaves=1,sentinels=3" in s.command("INFO", "sentinel") for s in self.sentinel_servers
        )
        return linked and seen

    def current_primary_port(self) -> int | None:
        """The port the sentinels now name as primary."""
        answer = self.sentinel_servers[0].command(
            "SENTINEL", "get-master-addr-by-name", self.master
        )
        lines = answer.split(b"\r\n")  # *2, $len, host, $len, port
        return int(lines[4]) if len(lines) > 4 and lines[4].isdigit() else None

    def flush(self) -> None:
        self.primary.command("FLUSHALL")
        deadline = time.monotonic() + 5
        while self.replica.command("DBSIZE").strip() != b":0" and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self) -> None:
        for server in (*self.sentinel_servers, self.replica, self.primary):
            server.stop()


CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--disable-features=AutofillServerCommunication,OptimizationHints,Translate",
    # Nothing but loopback resolves, so the browser cannot reach any other host at all.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)


def chromium() -> str | None:
    import shutil

    return shutil.which("chromium") or shutil.which("chromium-browser")


def render(url: str, workdir, *, budget_ms: int = 15000) -> tuple[str, list[str]]:
    """The page's DOM after its scripts ran, and every URL the page itself requested."""
    import json
    import subprocess

    netlog = workdir / "netlog.json"
    result = subprocess.run(
        [
            chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={workdir / 'profile'}",
            f"--virtual-time-budget={budget_ms}",
            f"--log-net-log={netlog}",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    log = json.loads(netlog.read_text())
    names = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    page_requests = [
        event["params"]["url"]
        for event in log["events"]
        if names.get(event["type"]) == "URL_REQUEST_START_JOB"
        and event.get("params", {}).get("network_isolation_key", "").startswith("http://127.0.0.1")
    ]
    return result.stdout, page_requests


def terminate(process, within: float = 15) -> int:
    """Stop a child process politely (SIGTERM), forcefully if it will not; its exit code."""
    import subprocess

    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=within)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@asynccontextmanager
async def asgi_client(
    settings,
    runtime,
    *,
    raise_app_exceptions: bool = True,
    lifespan: bool = False,
    peer: tuple[str, int] = ("127.0.0.1", 123),
    **overrides,
):
    """An httpx client for an app built by create_app() around `settings` and `runtime`
    (and any other container providers named in `overrides`), connecting from `peer`; with
    `lifespan`, the app's startup and shutdown run around the client, as a server would."""
    from contextlib import AsyncExitStack

    import httpx
    from dependency_injector import providers

    from mn_api.container import Container
    from mn_api.entrypoints.http import create_app

    container = Container()
    container.settings.override(providers.Object(settings))
    container.runtime.override(providers.Object(runtime))
    for name, value in overrides.items():
        getattr(container, name).override(providers.Object(value))
    app = create_app(container)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions, client=peer)
    async with AsyncExitStack() as stack:
        if lifespan:
            await stack.enter_async_context(app.router.lifespan_context(app))
        client = httpx.AsyncClient(transport=transport, base_url="http://gateway.test")
        yield await stack.enter_async_context(client)


@contextmanager
def local_http_server(do_post):
    """An HTTP server on 127.0.0.1 whose POSTs run `do_post(handler)` in its own thread;
    yields its base URL and stops with the block."""
    import threading
    from contextlib import suppress
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            with suppress(OSError):  # the client may hang up first
                do_post(self)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def map_resolver(table: dict[str, list[list[str]]]):
    """A HostResolver answering from `table`: each host's answers in turn, the last sticks."""
    from mn_api.application.ports import HostResolver

    class MapResolver(HostResolver):
        async def resolve(self, host: str, port: int) -> list[str]:
            answers = table.get(host, [[]])
            return answers.pop(0) if len(answers) > 1 else answers[0]

    return MapResolver()


def check_problem(body: dict[str, Any]) -> dict[str, Any]:
    """A problem answer as every client may read it: the stable code, and `errors` as
    sentences with codes (what the newest Web UI shows)."""
    assert isinstance(body.get("error"), str) and body["error"], body
    items = body.get("errors")
    assert isinstance(items, list) and items, body
    for item in items:
        assert isinstance(item.get("code"), str) and item["code"], item
        assert isinstance(item.get("message"), str) and item["message"].strip(), item
    return body


def webhook_secret(seed: str) -> str:
    """A Standard Webhooks secret (`whsec_<base64>`) made from a readable seed."""
    import base64

    return "whsec_" + base64.b64encode(seed.encode().ljust(24, b"_")).decode()


WEBHOOK_SECRET = webhook_secret("receiver-shared-secret-0123456789")


class WebhookReceiver:
    """A webhook receiver on 127.0.0.1 that verifies each delivery with the published
    `standardwebhooks` library, knowing only `secret`, and answers `fail_first` failures
    (500) for each delivery id first. A delivery counts as accepted before its answer
    leaves; `accept_delay` holds that answer back, as a slow receiver or network would."""

    def __init__(self, secret: str, *, fail_first: int = 0, status: int = 204) -> None:
        self.secret = secret
        self.fail_first = fail_first
        self.status = status
        self.accept_delay = 0.0
        self.requests: list[dict[str, Any]] = []
        self.accepted: list[dict[str, Any]] = []
        self._server: Any = None

    def verify(self, headers: Any, body: bytes) -> bool:
        from standardwebhooks import Webhook, WebhookVerificationError

        try:
            Webhook(self.secret).verify(body, dict(headers.items()))
        except WebhookVerificationError:
            return False
        return True

    def start(self) -> WebhookReceiver:
        import json
        import threading
        import time
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                record = {
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": json.loads(body),
                    "verified": receiver.verify(self.headers, body),
                }
                ident = self.headers.get("webhook-id")
                tries = sum(1 for r in receiver.requests if r["headers"].get("webhook-id") == ident)
                receiver.requests.append(record)
                status = 500 if tries < receiver.fail_first else receiver.status
                if status < 300 and record["verified"]:
                    receiver.accepted.append(record)
                    time.sleep(receiver.accept_delay)
                elif not record["verified"]:
                    status = 401
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


async def settled(client, listing_url: str, count: int, within: float = 60.0):
    """A job's webhook listing (GET `listing_url`) once `count` of its deliveries have
    their outcome recorded: a receiver counts a delivery before its answer reaches the
    gateway, so what the gateway shows comes a little later."""

    async def listing():
        answer = (await client.get(listing_url)).json()
        done = [d for d in answer["deliveries"] if d["state"] != "pending"]
        return answer if len(done) >= count else None

    return await eventually(listing, within=within)


async def eventually(check, within: float = 15.0, every: float = 0.05):
    """Wait until `check()` (sync or async) gives a truthy value; that value."""
    import asyncio
    import inspect
    import time

    deadline = time.monotonic() + within
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {within} s")
        await asyncio.sleep(every)


@asynccontextmanager
async def scripted_core(servicer, *services):
    """A gRPC server on a free loopback port serving `servicer` for each of `services` (the
    generated `add_..._to_server` functions), and a GrpcRuntime connected to it."""
    import grpc

    from mn_api.adapters.grpc.runtime import GrpcRuntime

    server = grpc.aio.server()
    for add_to_server in services:
        add_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    runtime = GrpcRuntime(f"127.0.0.1:{port}", timeout_seconds=5)
    try:
        yield runtime
    finally:
        await runtime.close()
        await server.stop(None)
