"""deploy/systemd: the unit passes systemd's own checks and runs what the gateway has."""

from __future__ import annotations

import configparser
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

from mn_api.config import Settings, known_variables
from mn_api.entrypoints.cli import GRACE_SECONDS
from tests.deploy.conftest import DEPLOY, needs_tool

UNIT = DEPLOY / "systemd" / "mn-api.service"
ENV_FILE = DEPLOY / "systemd" / "mn-api.env"
INSTALLED = "/opt/mn-api/bin/mn-api"


def _unit() -> configparser.ConfigParser:
    # Keys repeat in units (Environment=, SystemCallFilter=): keep every value.
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser


def _environment() -> dict[str, str]:
    """The unit's Environment= lines and the example env file, as the service sees them."""
    values: dict[str, str] = {}
    for line in ENV_FILE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    for line in UNIT.read_text().splitlines():
        if line.startswith("Environment="):
            name, _, value = line.removeprefix("Environment=").partition("=")
            values[name] = value
    return values


def test_systemd_analyze_verify_finds_nothing_to_say(tmp_path: Path) -> None:
    analyze = needs_tool("systemd-analyze", "systemd")
    # The unit as installed runs /opt/mn-api/bin/mn-api; here it runs this venv's gateway,
    # which systemd-analyze checks is there and executable.
    here = str(Path(sys.executable).with_name("mn-api"))
    text = UNIT.read_text()
    assert f"ExecStart={INSTALLED}\n" in text
    unit = tmp_path / "mn-api.service"
    unit.write_text(text.replace(f"ExecStart={INSTALLED}", f"ExecStart={here}"))
    verified = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert verified.returncode == 0, verified.stderr
    # Unknown keys and misplaced settings are only warnings: none is expected.
    assert verified.stderr.strip() == "", verified.stderr


def test_the_unit_starts_the_console_script_the_package_installs() -> None:
    exec_start = _unit()["Service"]["ExecStart"].split()
    assert exec_start == [INSTALLED]
    scripts = {script.name for script in entry_points(group="console_scripts")}
    assert Path(INSTALLED).name in scripts


def test_every_variable_the_service_is_given_is_a_setting() -> None:
    environment = _environment()
    ours = {name for name in environment if name.startswith("MN_")}
    assert ours - known_variables() == set()
    # The example is a configuration the gateway accepts as it is.
    settings = Settings(**{k: v for k, v in environment.items() if k.startswith("MN_")})
    assert settings.env == "prod" and settings.auth_enabled
    assert str(settings.bundle_dir).startswith("/var/lib/mn-api/")
    assert settings.log_path.startswith("/var/log/mn-api/")


def test_the_service_may_write_where_the_gateway_writes_and_nowhere_else() -> None:
    service = _unit()["Service"]
    assert service["ProtectSystem"] == "strict"
    assert service["NoNewPrivileges"] == "yes" and service["PrivateTmp"] == "yes"
    writable = service["ReadWritePaths"].split()
    environment = _environment()
    for folder in (environment["MN_API_BUNDLE_DIR"], environment["MN_API_LOG_PATH"]):
        assert any(Path(folder).is_relative_to(root) for root in writable), folder


def test_systemd_waits_longer_than_the_gateway_drains() -> None:
    """The gateway gives requests GRACE_SECONDS after SIGTERM, then stops its workers and
    the shared runtime: systemd must not kill it before that is done."""
    service = _unit()["Service"]
    assert service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) >= 2 * GRACE_SECONDS
