"""Redis servers for the tests: one server, a cluster, a Sentinel group."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# The benchmark's process helpers serve the tests as they are.
from bench._procs import free_port


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
