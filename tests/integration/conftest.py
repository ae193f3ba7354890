"""Fixtures of the integration suites."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import FakeCoreProcess, free_port


@pytest.fixture
def core() -> Iterator[FakeCoreProcess]:
    """An mn-fake-core process on a free loopback port, stepping every 2 ms."""
    process = FakeCoreProcess(free_port(), "--step-ms", "2").start()
    yield process
    process.stop()
