"""mn-api: serve the gateway (uvicorn), on the core over gRPC or on the in-memory runtime."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

from pydantic import ValidationError

from mn_api._version import __version__
from mn_api.config import Settings, describe_error, unknown_variables

# After SIGTERM (or SIGINT), how long requests still being answered may take, event
# streams included; what is still open then is closed.
GRACE_SECONDS = 10

_OVERRIDES = {
    "runtime": "MN_RUNTIME",
    "host": "MN_API_HOST",
    "port": "MN_API_PORT",
    "workers": "MN_API_WORKERS",
    "log_level": "MN_LOG_LEVEL",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mn-api", description=__doc__)
    parser.add_argument(
        "--runtime",
        choices=["grpc", "memory"],
        help="where jobs run (default: MN_RUNTIME, else grpc)",
    )
    parser.add_argument("--host", help="bind address (default: MN_API_HOST, else localhost)")
    parser.add_argument("--port", type=int, help="bind port (default: MN_API_PORT, else 4001)")
    parser.add_argument("--workers", type=int, help="worker processes (default: MN_API_WORKERS)")
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        help="the least severe log records written (default: MN_LOG_LEVEL, else INFO)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def check_address(host: str, port: int, command: str = "mn-api") -> None:
    """Stop with one line when the address cannot be listened on (taken, or not this
    host's), rather than after the application has started. Bound as the server binds it:
    IPv6 when the host has a colon, else IPv4."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host.strip("[]"), port))
    except (OSError, UnicodeError) as err:
        reason = getattr(err, "strerror", None) or type(err).__name__
        print(f"{command}: cannot listen on {host}:{port}: {reason.lower()}", file=sys.stderr)
        raise SystemExit(2) from None


def load_settings(command: str = "mn-api") -> Settings:
    try:
        settings = Settings()
    except ValidationError as err:
        print(f"{command}: {describe_error(err)}", file=sys.stderr)
        raise SystemExit(2) from None
    return settings


def check_tracing(settings: Settings, command: str = "mn-api") -> None:
    """Stop with one line naming the extra when OTLP export is asked for without it."""
    if not (settings.traces or settings.otlp_metrics):
        return
    from mn_api.entrypoints.otlp import unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        print(f"{command}: {reason}", file=sys.stderr)
        raise SystemExit(2)


def warn_unknown_variables(command: str) -> None:
    """Name each MN_ variable no setting reads, once, as the command starts."""
    for line in unknown_variables(os.environ):
        print(f"{command}: warning: {line}", file=sys.stderr)


def app_factory() -> object:
    """Uvicorn's factory: each worker process builds its own app from the environment."""
    from mn_api.container import build_container
    from mn_api.entrypoints.http.app import create_app
    from mn_api.entrypoints.logging_setup import configure_logging

    settings = load_settings()
    configure_logging(settings)
    container = build_container(settings)
    return create_app(container)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    # Flags win over the environment; workers inherit them through it.
    for name, variable in _OVERRIDES.items():
        value = getattr(args, name)
        if value is not None:
            os.environ[variable] = str(value)
    warn_unknown_variables("mn-api")
    settings = load_settings()
    check_tracing(settings)
    check_address(settings.api_host, settings.api_port)
    core = _shared_core(settings)
    metrics_dir = _shared_metrics(settings)

    import uvicorn

    from mn_api.entrypoints.server import raise_descriptor_limit

    raise_descriptor_limit()
    if settings.api_workers > 1:
        from mn_api.entrypoints.logging_setup import configure_logging

        # The supervisor's own lines: workers started, died and replaced, the stop.
        configure_logging(settings)

    # Uvicorn shuts down gracefully on these, then raises the signal again once its own
    # handlers are gone; ending with status 0 here tells supervisors the stop was clean.
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, _exit_cleanly)

    try:
        uvicorn.run(
            "mn_api.entrypoints.cli:app_factory",
            factory=True,
            host=settings.api_host,
            port=settings.api_port,
            workers=settings.api_workers,
            log_config=None,
            access_log=False,
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=GRACE_SECONDS,
            http="mn_api.entrypoints.server:GuardedProtocol",
            timeout_keep_alive=settings.keep_alive_seconds,
        )
    finally:
        if core is not None:
            core.terminate()
            core.wait(timeout=10)
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _shared_metrics(settings: Settings) -> str | None:
    """Workers write their metrics to one folder, so any of them can report them all."""
    if settings.api_workers == 1 or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return None
    folder = tempfile.mkdtemp(prefix="mn-api-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    return folder


def _shared_core(settings: Settings) -> subprocess.Popen[str] | None:
    """Several workers cannot share one in-memory runtime; they share an mn-fake-core
    child instead, reached over loopback, so every worker gives the same answers."""
    if settings.runtime != "memory" or settings.api_workers == 1:
        return None
    core = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mn_api.entrypoints.fake_core",
            "--port",
            "0",
            "--step-ms",
            str(settings.fake_step_ms),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = core.stdout.readline() if core.stdout else ""
    if "listening on" not in line:
        core.kill()
        print("mn-api: the shared in-memory runtime did not start", file=sys.stderr)
        raise SystemExit(1)
    os.environ["MN_RUNTIME"] = "grpc"
    os.environ["MN_GRPC_TARGET"] = line.rsplit(" ", 1)[-1].strip()
    return core


def _exit_cleanly(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    main()
