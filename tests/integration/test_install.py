"""The project installs with the installers people have: the oldest pip it supports, a pip
from the range whose resolver gives up on tangled requirements, and uv. Each resolves the
project with its test extra (which takes in the `otel` extra) from the package index, as a
newcomer's `pip install '.[test]'` would, without the repository's constraints file. The
suite's own install (make test) runs the pip the machine's Python ships with."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support import cached_venv

pytestmark = pytest.mark.slow

REPOSITORY = Path(__file__).resolve().parents[2]
INSTALLERS = {"pip-23.0": "pip==23.0", "pip-24.0": "pip==24.0", "uv": "uv>=0.5"}


@pytest.mark.parametrize("installer", sorted(INSTALLERS))
def test_the_project_and_its_extras_resolve(installer: str) -> None:
    home = cached_venv(f"installer-{installer}", INSTALLERS[installer])
    python = str(home / "bin" / "python")
    wanted = f"{REPOSITORY}[test]"
    if installer == "uv":
        command = [str(home / "bin" / "uv"), "pip", "install", "--python", python]
    else:
        command = [python, "-m", "pip", "install", "--ignore-installed"]
    done = subprocess.run(
        [*command, "--dry-run", wanted],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = done.stdout + done.stderr
    assert "opentelemetry-sdk" in report and "uvicorn" in report, report[-2000:]
