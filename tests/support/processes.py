"""Gateway and fake-core processes, and virtual environments of published packages."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

# The benchmark's process helpers serve the tests as they are, and so does the test kit's.
from bench._procs import free_port, wait_http

from mn_api.testing.processes import terminate

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


# The credentials fake cores are started with in tests (checked from release 1.2.5 on).
CORE_TOKEN = "core-token"


CORE_ADMIN_TOKEN = "core-admin-secret"


CORE_CREDENTIALS = ("--token", CORE_TOKEN, "--admin-token", CORE_ADMIN_TOKEN)


GATEWAY_CORE_ENV = {"MN_GRPC_AUTH_TOKEN": CORE_TOKEN, "MN_GRPC_ADMIN_TOKEN": CORE_ADMIN_TOKEN}


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
        target: str | None = None,
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
        # A core (or cluster) started by the test: MN_GRPC_TARGET as it is given.
        self.target = target
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
        elif self.target is not None:
            env.update({"MN_RUNTIME": "grpc", "MN_GRPC_TARGET": self.target})
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
            [mn_api, *self.args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
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


# The published gateway the later routes are compared with.
OFFICIAL_GATEWAY = ("mirrorneuron-api-1.2.31", "mirrorneuron-api==1.2.31")


class OfficialGatewayProcess:
    """The published mn-api (its `mn-api` console script, from a cached virtual environment)
    in front of a fake core, with one bearer token. It reads its settings from the
    environment and from `.env` files of its working folder, so it runs in a folder of its
    own with a home there too (its uploads, logs and staging stay inside)."""

    def __init__(self, home: Path, core: FakeCoreProcess, token: str) -> None:
        self.home = home
        self.core = core
        self.token = token
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> OfficialGatewayProcess:
        venv = cached_venv(*OFFICIAL_GATEWAY)
        temporary = self.home / "tmp"
        temporary.mkdir(parents=True, exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "TMPDIR": str(temporary),
            "MN_ENV": "test",
            "MN_GRPC_TARGET": f"127.0.0.1:{self.core.port}",
            **{"MN_GRPC_AUTH_TOKEN": CORE_TOKEN, "MN_GRPC_ADMIN_TOKEN": CORE_ADMIN_TOKEN},
            "MN_API_HOST": "127.0.0.1",
            "MN_API_PORT": str(self.port),
            "MN_API_TOKEN": self.token,
            "MN_API_LOG_PATH": str(self.home / "api.log"),
        }
        self.process = subprocess.Popen(
            [str(venv / "bin" / "mn-api")],
            cwd=self.home,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
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
