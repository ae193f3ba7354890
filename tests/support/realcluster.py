"""Core clusters of three nodes as test peers, one interface for both kinds:

- `RealCluster`: the real MirrorNeuron core (../shared/realcore) run by its `cluster.sh` as
  N BEAM nodes on loopback sharing one Redis, in a scratch folder of the test's own;
- `SimulatedCluster`: `mn-fake-core --nodes N` (one gRPC port per simulated node), whose
  faults are triggered through its fault service.

Both name their nodes `mn<k>@127.0.0.1` and give `targets` in MN_GRPC_TARGET's form.
Everything started is stopped by process id.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support import free_port
from tests.support.processes import terminate
from tests.support.realcore import RELEASE_DIR, release_archive, unpacked_release

CLUSTER_SCRIPT = RELEASE_DIR / "cluster.sh"
LEADER_KEY = "mirror_neuron:lease:cluster:leader"


def _wait_port(port: int, within: float = 30.0) -> None:
    import socket
    import time

    deadline = time.monotonic() + within
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on 127.0.0.1:{port}") from None
            time.sleep(0.05)


def node_name(k: int) -> str:
    return f"mn{k}@127.0.0.1"


class RealCluster:
    """The real core as a cluster of `size` nodes, run by cluster.sh in `workdir`."""

    kind = "real"

    def __init__(self, workdir: Path, size: int = 3) -> None:
        self.workdir = workdir
        self.size = size
        self.targets = ""
        self.ports: list[int] = []

    @staticmethod
    def available() -> str | None:
        """Why a real cluster cannot run here, or None when it can."""
        if release_archive() is None or not CLUSTER_SCRIPT.is_file():
            return "the real core's release and cluster.sh are not in ../shared/realcore"
        return None

    def _run(self, *args: str, timeout: float = 120) -> str:
        env = {**os.environ, "CL_DIR": str(self.workdir)}
        done = subprocess.run(
            ["bash", str(CLUSTER_SCRIPT), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"cluster.sh {' '.join(args)} failed: {done.stderr[-2000:]}")
        return done.stdout

    def _get(self, key: str) -> str:
        return self._run("get", key).strip()

    def start(self) -> RealCluster:
        # The release, unpacked once for every test session, is lent to the cluster.
        release = self.workdir / "release"
        release.mkdir(parents=True, exist_ok=True)
        link = release / "mirror_neuron"
        if not link.exists():
            link.symlink_to(unpacked_release(), target_is_directory=True)
        try:
            for line in self._run("start", str(self.size), timeout=300).splitlines():
                if line.startswith("GRPC_TARGETS="):
                    self.targets = line.split("=", 1)[1]
        except BaseException:
            self.stop()
            raise
        self.ports = [int(self._get(f"GRPC_{k}")) for k in range(1, self.size + 1)]
        return self

    async def kill(self, k: int) -> None:
        await asyncio.to_thread(self._run, "kill9", str(k))

    async def restart(self, k: int) -> None:
        await asyncio.to_thread(self._run, "restart", str(k))

    async def store_stop(self) -> None:
        await asyncio.to_thread(self._run, "redis-stop")

    async def store_start(self) -> None:
        await asyncio.to_thread(self._run, "redis-start", "keep")

    async def leader(self) -> str:
        import redis.asyncio as redis

        client = redis.Redis(port=int(self._get("REDIS_PORT")))
        try:
            value = await client.get(LEADER_KEY)
        finally:
            await client.aclose()
        return value.decode() if value else ""

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self._run("stop", timeout=120)


class SimulatedCluster:
    """mn-fake-core simulating a cluster of `size` nodes of the d26bef71 core."""

    kind = "simulated"

    def __init__(self, workdir: Path, size: int = 3, *args: str) -> None:
        self.workdir = workdir
        self.size = size
        self.args = args
        self.ports = [free_port() for _ in range(size)]
        self.targets = ",".join(f"127.0.0.1:{port}" for port in self.ports)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> SimulatedCluster:
        command = [
            str(Path(sys.executable).with_name("mn-fake-core")),
            "--release",
            "d26bef71",
            "--nodes",
            str(self.size),
            "--ports",
            ",".join(str(p) for p in self.ports),
            "--step-ms",
            "20",
            *self.args,
        ]
        log = (self.workdir / "fake-core.log").open("wb")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        for port in self.ports:
            _wait_port(port)
        return self

    async def _apply(self, action: str, **fields: Any) -> dict[str, Any]:
        from mn_api.entrypoints.fake_core.faults import apply_fault

        # Any live node's port takes faults for the whole simulated cluster.
        status_error: Exception | None = None
        for port in self.ports:
            try:
                return await apply_fault(f"127.0.0.1:{port}", action, **fields)
            except Exception as error:
                status_error = error
        raise RuntimeError(f"no node of the simulated cluster took {action}: {status_error}")

    async def kill(self, k: int) -> None:
        await self._apply("kill_node", node=node_name(k))

    async def restart(self, k: int) -> None:
        await self._apply("restart_node", node=node_name(k))

    async def store_stop(self) -> None:
        await self._apply("state_store_down")

    async def store_start(self) -> None:
        await self._apply("state_store_up")

    async def leader(self) -> str:
        return str((await self._apply("status")).get("leader", ""))

    def stop(self) -> None:
        if self.process is not None:
            terminate(self.process)
            self.process = None
