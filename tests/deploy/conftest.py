"""What the deployment kit's tests share: where deploy/ is, and the tools they run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def needs_tool(command: str, package: str) -> str:
    """The path of `command`; missing, the test fails in CI (the Makefile installs
    `package`) and is skipped elsewhere."""
    found = shutil.which(command)
    if found is None:
        message = f"{command} is not installed (Debian package {package}; make test installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found
