"""The published SDK 1.2.31 and CLI 1.2.32, as they are, on the service registry of
mn-fake-core in the 1.2.31 profile (ListServices, ResolveService, CheckServices)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import CORE_TOKEN, FakeCoreProcess, free_port
from tests.support.published_cli import PublishedCli, printed_json
from tests.witness.services_driver import MANIFEST
from tests.witness.test_published_sdks import sdk_python

pytestmark = pytest.mark.slow

DRIVER = Path(__file__).with_name("services_driver.py")


@pytest.fixture
def core() -> Iterator[FakeCoreProcess]:
    process = FakeCoreProcess(
        free_port(), "--release", "1.2.31", "--step-ms", "5", "--token", CORE_TOKEN
    ).start()
    try:
        yield process
    finally:
        process.stop()


def test_the_sdk_lists_resolves_and_checks(core: FakeCoreProcess) -> None:
    done = subprocess.run(
        [str(sdk_python("1.2.31")), str(DRIVER), f"127.0.0.1:{core.port}", CORE_TOKEN],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("MN_")},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    job_id = out["job_id"]
    listed = out["listed"]
    assert listed["version"] == 1
    assert [s["id"] for s in listed["services"]] == [
        f"{job_id}:job:api",
        f"{job_id}:worker:flaky",
        f"{job_id}:worker:search-index",
    ]
    flaky = listed["services"][1]
    assert flaky["status"] == "critical" and flaky["health"]["checks"][0]["type"] == "script"
    assert [s["name"] for s in out["passing"]["services"]] == ["api", "search-index"]
    assert [s["name"] for s in out["by_job_and_tag"]["services"]] == ["search-index"]
    [index] = out["resolved"]["services"]
    assert (
        index["port"] == 9200
        and index["agent_id"] == "worker"
        and index["tags"]
        == [
            "v1",
            "gpu",
        ]
    )
    assert out["resolved_failing"] == {"services": [], "version": 1}
    checked = out["checked"]
    assert checked["version"] == "validation.report/v1" and checked["ok"] is False
    assert [r["status"] for r in checked["results"]] == ["passing", "optional_missing", "invalid"]
    assert checked["errors"] == ["required_services.2 must be an object"]
    assert out["anonymous"]["code"] == "UNAUTHENTICATED"
    assert out["after"] == {"services": [], "version": 1}


def test_the_cli_resolves_and_checks_bundles(core: FakeCoreProcess, tmp_path: Path) -> None:
    mn = PublishedCli(tmp_path / "cli", f"127.0.0.1:{core.port}")
    (tmp_path / "job.json").write_text(json.dumps(MANIFEST))
    for name, required in (
        ("present", [{"name": "search-index", "tags": ["v1"]}, {"name": "api"}]),
        ("absent", [{"name": "vector-db"}]),
    ):
        (tmp_path / name).mkdir()
        manifest = {**MANIFEST, "required_services": required}
        (tmp_path / name / "manifest.json").write_text(json.dumps(manifest))

    code, before = mn("service", "check", tmp_path / "present")
    assert code == 1 and "has no passing registered instances" in before
    mn.ok("job", "submit", tmp_path / "job.json")
    for _ in range(100):  # until the job runs and its services are there
        code, resolved = mn("service", "resolve", "search-index", "--tag", "v1")
        if code == 0 and printed_json(resolved)["services"]:
            break
    assert [s["name"] for s in printed_json(resolved)["services"]] == ["search-index"]
    assert len(mn.json("service", "list", "--all")["services"]) == 3
    assert "Service check confirmed." in mn.ok("service", "check", tmp_path / "present")
    code, refused = mn("service", "check", tmp_path / "absent")
    assert code == 1 and "vector-db has no passing registered instances" in refused
    mn.close()
