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

from tests.support import CORE_TOKEN, FakeCoreProcess, cached_venv, free_port
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


def _env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("MN_")}, **extra}


def test_the_sdk_lists_resolves_and_checks(core: FakeCoreProcess) -> None:
    done = subprocess.run(
        [str(sdk_python("1.2.31")), str(DRIVER), f"127.0.0.1:{core.port}", CORE_TOKEN],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
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
    mn = cached_venv("mirrorneuron-cli-1.2.32", "mirrorneuron-cli==1.2.32") / "bin" / "mn"
    (tmp_path / "home").mkdir()
    (tmp_path / "job.json").write_text(json.dumps(MANIFEST))
    for name, required in (
        ("present", [{"name": "search-index", "tags": ["v1"]}, {"name": "api"}]),
        ("absent", [{"name": "vector-db"}]),
    ):
        (tmp_path / name).mkdir()
        manifest = {**MANIFEST, "required_services": required}
        (tmp_path / name / "manifest.json").write_text(json.dumps(manifest))
    env = _env(
        HOME=str(tmp_path / "home"),
        MN_GRPC_TARGET=f"127.0.0.1:{core.port}",
        MN_GRPC_AUTH_TOKEN=CORE_TOKEN,
        MN_DISABLE_UPDATE_CHECK="1",
        MN_CLI_OUTPUT="plain",
        MN_SYNCTHING_ENABLED="0",
        NO_COLOR="1",
        TERM="dumb",
        COLUMNS="200",
    )

    def mn_run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(mn), *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
        )

    before = mn_run("service", "check", "present")
    assert before.returncode == 1 and "has no passing registered instances" in before.stdout
    assert mn_run("job", "submit", "job.json").returncode == 0
    resolved = mn_run("service", "resolve", "search-index", "--tag", "v1")
    for _ in range(100):  # until the job runs and its services are there
        if resolved.returncode == 0 and json.loads(resolved.stdout)["services"]:
            break
        resolved = mn_run("service", "resolve", "search-index", "--tag", "v1")
    assert [s["name"] for s in json.loads(resolved.stdout)["services"]] == ["search-index"]
    listed = mn_run("service", "list", "--all")
    assert listed.returncode == 0 and len(json.loads(listed.stdout)["services"]) == 3
    confirmed = mn_run("service", "check", "present")
    assert confirmed.returncode == 0, confirmed.stdout + confirmed.stderr
    assert "Service check confirmed." in confirmed.stdout
    refused = mn_run("service", "check", "absent")
    assert refused.returncode == 1
    assert "vector-db has no passing registered instances" in refused.stdout
