"""pytest fixtures for contract tests against the gateway and the simulated core; pytest
loads them by itself wherever this package is installed (the `mn_api` plugin).

Processes, started once per test session and made fresh again before each test:

- `mn_fake_core`: `mn-fake-core` behaving like `mn_release` (`--mn-release` or the
  `mn_release` ini option, 1.2.31 by default), reset before the test (no job, no call
  remembered, no fault scripted); `.target`, `.control` (`fail_next`, `delay_next`,
  `calls`, `reset`, ...);
- `mn_gateway`: `mn-api` in front of it (`.url`), with the settings `mn_gateway_env`
  gives (override that fixture, e.g. to turn auth on);
- `mn_client`: an `httpx.Client` on the gateway's URL.

In this process: `mn_app_client`, an `httpx.Client` of the gateway on its in-memory runtime
behaving like `mn_release` (built by `mn_api.create_app`, served from a thread).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from mn_api.testing.processes import FakeCoreProcess, GatewayProcess, InProcessGateway

RELEASES = ("1.1", "1.2.5", "1.2.31", "d26bef71")
DEFAULT_RELEASE = "1.2.31"
# The credentials the simulated core checks (where its release does) and the gateway sends.
CORE_TOKEN = "mn-test-core-token"
CORE_ADMIN_TOKEN = "mn-test-core-admin-token"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mn_api", "MirrorNeuron gateway and simulated core")
    group.addoption(
        "--mn-release",
        choices=RELEASES,
        default=None,
        help=f"the core release the simulated core behaves like (default {DEFAULT_RELEASE})",
    )
    parser.addini("mn_release", "the core release the simulated core behaves like")


@pytest.fixture(scope="session")
def mn_release(pytestconfig: pytest.Config) -> str:
    """The core release the simulated core behaves like."""
    chosen = pytestconfig.getoption("mn_release") or pytestconfig.getini("mn_release")
    release = str(chosen or DEFAULT_RELEASE)
    if release not in RELEASES:
        raise pytest.UsageError(f"mn_release {release!r} is none of {', '.join(RELEASES)}")
    return release


@pytest.fixture(scope="session")
def mn_gateway_env() -> dict[str, str]:
    """Settings of the gateway process beyond its core (`MN_API_TOKENS`, ...)."""
    return {}


@pytest.fixture(scope="session")
def _mn_fake_core_process(mn_release: str) -> Iterator[FakeCoreProcess]:
    with FakeCoreProcess(mn_release, token=CORE_TOKEN, admin_token=CORE_ADMIN_TOKEN) as core:
        yield core


@pytest.fixture(scope="session")
def _mn_gateway_process(
    _mn_fake_core_process: FakeCoreProcess, mn_gateway_env: dict[str, str]
) -> Iterator[GatewayProcess]:
    with GatewayProcess(_mn_fake_core_process, env=mn_gateway_env) as gateway:
        yield gateway


@pytest.fixture
def mn_fake_core(_mn_fake_core_process: FakeCoreProcess) -> FakeCoreProcess:
    """The simulated core, as freshly started."""
    _mn_fake_core_process.control.reset()
    return _mn_fake_core_process


@pytest.fixture
def mn_gateway(
    _mn_gateway_process: GatewayProcess, mn_fake_core: FakeCoreProcess
) -> GatewayProcess:
    """The gateway in front of the simulated core (reset for this test)."""
    return _mn_gateway_process


@pytest.fixture
def mn_client(mn_gateway: GatewayProcess) -> Iterator[httpx.Client]:
    """An HTTP client of the gateway (`mn_client.get("/api/v1/jobs")`)."""
    with httpx.Client(base_url=mn_gateway.url, timeout=30.0) as client:
        yield client


@pytest.fixture
def mn_app_client(
    mn_release: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    """The gateway in this process on its in-memory runtime, started for the test and
    stopped after it; an HTTP client of it."""
    from mn_api import create_app

    folder = tmp_path_factory.mktemp("mn-gateway")
    app = create_app(
        runtime="memory",
        fake_core_release=mn_release,
        bundle_dir=folder / "bundles",
        log_path=str(folder / "api.log"),
    )
    with InProcessGateway(app) as gateway, httpx.Client(base_url=gateway.url) as client:
        yield client
