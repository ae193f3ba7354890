"""mn-api as a real process: flags, configuration errors and a clean stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support import FakeCoreProcess, free_port, pipeline_manifest, wait_http

MN_API = str(Path(sys.executable).with_name("mn-api"))


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MN_")}
    env.update(
        {
            "MN_API_LOG_PATH": str(tmp_path / "api.log"),
            "MN_API_BUNDLE_DIR": str(tmp_path / "bundles"),
            "MN_FAKE_STEP_MS": "1",
        }
    )
    env.update(extra)
    return env


def test_a_bad_setting_stops_startup_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [MN_API],
        env=_env(tmp_path, MN_API_PORT="eighty"),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "MN_API_PORT" in result.stderr


def test_prod_without_a_token_refuses_to_start(tmp_path: Path) -> None:
    result = subprocess.run(
        [MN_API, "--runtime", "memory"],
        env=_env(tmp_path, MN_ENV="prod"),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2 and "MN_API_TOKEN" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_serves_the_memory_runtime_and_stops_cleanly(tmp_path: Path, stop: signal.Signals) -> None:
    port = free_port()
    process = subprocess.Popen(
        [MN_API, "--runtime", "memory", "--host", "127.0.0.1", "--port", str(port)],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}/api/v1"
        wait_http(f"{base}/health")
        job = httpx.post(f"{base}/jobs", json={"manifest": pipeline_manifest()}).json()
        deadline = time.monotonic() + 10
        while httpx.get(f"{base}/jobs/{job['job_id']}").json()["job"]["status"] != "completed":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        process.send_signal(stop)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log = (tmp_path / "api.log").read_text()
    assert "POST /api/v1/jobs 201" in log
    assert "Application shutdown complete" in log


@pytest.mark.slow
def test_serves_a_core_over_grpc_by_default(tmp_path: Path) -> None:
    core = FakeCoreProcess(free_port(), "--step-ms", "1", "--token", "core-secret").start()
    port = free_port()
    env = _env(
        tmp_path,
        MN_GRPC_TARGET=f"127.0.0.1:{core.port}",
        MN_GRPC_AUTH_TOKEN="core-secret",
        MN_API_HOST="127.0.0.1",
        MN_API_PORT=str(port),
    )
    process = subprocess.Popen([MN_API], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}/api/v1"
        wait_http(f"{base}/health")
        assert httpx.get(f"{base}/ready").status_code == 200
        job = httpx.post(f"{base}/jobs", json={"manifest": pipeline_manifest()}).json()
        deadline = time.monotonic() + 10
        while httpx.get(f"{base}/jobs/{job['job_id']}").json()["job"]["status"] != "completed":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        core.stop()


@pytest.mark.parametrize("command", [[MN_API], [sys.executable, "-m", "mn_api"]])
def test_both_commands_tell_their_version(command: list[str], tmp_path: Path) -> None:
    from mn_api import __version__

    result = subprocess.run(
        [*command, "--version"], env=_env(tmp_path), capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0 and result.stdout.strip() == f"mn-api {__version__}"


def test_the_log_level_flag_wins_over_the_environment(tmp_path: Path) -> None:
    from mn_api.entrypoints.cli import _OVERRIDES, _parser

    args = _parser().parse_args(["--log-level", "debug"])
    assert args.log_level == "DEBUG" and _OVERRIDES["log_level"] == "MN_LOG_LEVEL"
    refused = subprocess.run(
        [MN_API, "--log-level", "chatty"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode == 2 and "invalid choice: 'CHATTY'" in refused.stderr


def test_variables_no_setting_reads_are_named_with_the_closest_one() -> None:
    from mn_api.config import known_variables, unknown_variables

    lines = unknown_variables(
        {"MN_API_PROT": "1", "MN_API_PORT": "1", "HOME": "/root", "MN_ZZZ_QQQ": "1"}
    )
    assert lines == [
        "MN_API_PROT is not a setting and is ignored (did you mean MN_API_PORT?)",
        "MN_ZZZ_QQQ is not a setting and is ignored",
    ]
    assert {"MN_HISTORY_CACHE_MB", "MN_GRPC_TARGET", "MN_FAKE_CORE_RELEASE"} <= known_variables()


def test_the_fake_core_names_itself_and_the_bad_variable(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("mn-fake-core")), "--port", "0"],
        env=_env(tmp_path, MN_FAKE_CORE_RELEASE="9.9", MN_FAKE_STEP="1"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    warning, error = result.stderr.strip().split("\n")
    assert warning.startswith("mn-fake-core: warning: MN_FAKE_STEP is not a setting")
    assert "did you mean MN_FAKE_STEP_MS?" in warning
    assert error.startswith("mn-fake-core: ") and "MN_FAKE_CORE_RELEASE" in error


def test_a_taken_port_stops_both_commands_with_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for command, env in (
            ([MN_API], {"MN_API_HOST": "127.0.0.1", "MN_API_PORT": str(port)}),
            (
                [str(Path(sys.executable).with_name("mn-fake-core")), "--host", "127.0.0.1",
                 "--port", str(port)],
                {},
            ),
        ):  # fmt: skip
            result = subprocess.run(
                command, env=_env(tmp_path, **env), capture_output=True, text=True, timeout=30
            )
            assert result.returncode == 2, result.stderr
            (line,) = result.stderr.strip().split("\n")
            assert f"cannot listen on 127.0.0.1:{port}" in line


def test_tracing_without_its_packages_names_the_extra(tmp_path: Path) -> None:
    """As on an install without the `otel` extra: the packages cannot be imported."""
    hide = "import sys; sys.modules['opentelemetry.sdk'] = None; "
    run = "from mn_api.entrypoints.cli import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", hide + run, "--runtime", "memory"],
        env=_env(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4317"),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().split("\n")
    assert line.startswith("mn-api: OTLP export is asked for")
    assert "opentelemetry.sdk is not installed" in line
    assert "pip install '.[otel]' in the gateway's checkout" in line
